# The receiver's image: built in one stage, run from another that holds only
# the installed package. Non-root (uid 10001), works with a read-only root
# filesystem: the only writable paths it needs are /data (the SQLite store, a
# volume) and /tmp (an emptyDir in the Helm chart; --tmpfs /tmp with docker).
#
#   docker build -t receiver:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v receiver-data:/data -p 9095:9095 receiver:0.1.0
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY receiver ./receiver
# Bytecode compiled here: a read-only root filesystem never has to write it.
RUN python -m venv /venv \
    && /venv/bin/pip install . \
    && /venv/bin/python -m compileall -q /venv \
    && /venv/bin/pip uninstall -y pip setuptools

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 receiver \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin receiver \
    && mkdir /data && chown 10001:10001 /data \
    && python -m pip uninstall -y pip setuptools wheel \
    && rm -rf /root/.cache /var/lib/apt/lists/*
COPY --from=build /venv /venv
COPY playbooks /app/playbooks
ENV PATH=/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 9095
ENTRYPOINT ["receiver", "serve"]
CMD ["--data-dir", "/data", "--listen", "0.0.0.0:9095"]
