# A minimal image: the package on slim Python 3.11, run as a non-root user,
# data on a volume. Issue #5 hardens it (multi-stage build, read-only root
# filesystem, structure test) and adds the Helm chart.
FROM python:3.11-slim

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin receiver \
    && mkdir /data && chown 10001 /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY receiver ./receiver
RUN pip install --no-cache-dir . && rm -rf /app

USER 10001
VOLUME ["/data"]
EXPOSE 9095
ENTRYPOINT ["receiver", "serve", "--data-dir", "/data", "--listen", "0.0.0.0:9095"]
