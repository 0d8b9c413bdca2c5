"""Real processes for end-to-end tests: ``receiver serve`` and Alertmanager.

Everything listens on 127.0.0.1 with ports picked by the kernel; every wait is
a bounded poll that fails with a message saying what did not happen. A missing
Alertmanager binary fails the test (CI installs it): it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import resource
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from receiver.store.sqlite import SQLiteStore

T = TypeVar("T")
RECEIVER_BIN = Path(sys.executable).parent / "receiver"


def require_binary(name: str, package: str = "prometheus-alertmanager") -> str:
    """The path of ``name``, or a test failure that says how to get it (Debian's ``package``)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `apt-get install -y {package}` (.ci/run does)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, seconds: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy, for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            last = await check()
            if last:
                return last  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what} (last seen: {last!r})")


class Receiver:
    """A ``receiver serve`` child process with its own data directory."""

    def __init__(
        self,
        workdir: Path,
        http: aiohttp.ClientSession,
        settings: dict[str, Any] | None = None,
        open_files: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.open_files = open_files
        """RLIMIT_NOFILE of the child (soft and hard), when given."""
        self.http = http
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "receiver.yml"
        self.config.write_text(yaml.safe_dump({"log_level": "debug", **(settings or {})}))
        self.env = {**os.environ, "RECEIVER_WEBHOOK_TOKEN": "e2e-token"}
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.args: list[str] = []
        """More arguments of ``receiver serve`` (``--timer virtual``)."""

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    async def start(self) -> None:
        """Start the process and wait until /readyz answers 200."""
        self.starts += 1
        log = (self.workdir / f"receiver-{self.starts}.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            str(RECEIVER_BIN),
            "serve",
            "--config",
            str(self.config),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
            *self.args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            env=self.env,
            preexec_fn=self._limit_open_files if self.open_files is not None else None,
        )
        log.close()
        await eventually(self._ready, f"receiver on port {self.port} to be ready ({self.log_tail()})", 20)

    def _limit_open_files(self) -> None:
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    async def _ready(self) -> bool:
        if self.proc is not None and self.proc.returncode is not None:
            raise AssertionError(f"receiver exited with {self.proc.returncode}: {self.log_tail()}")
        async with self.http.get(self.url + "/readyz") as response:
            return response.status == 200

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, seconds: float) -> int:
        """Wait for the process to end; its exit status."""
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), seconds)

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.signal(signal.SIGKILL)
        await self.wait_exit(10)

    def engine_pid(self) -> int | None:
        """The pid of this receiver's engine process, if it runs one now."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        return pids[0] if pids else None

    async def alerts(self, **query: str) -> list[dict[str, Any]]:
        async with self.http.get(self.url + "/api/v1/alerts", params={"limit": "10000", **query}) as response:
            assert response.status == 200, await response.text()
            data: list[dict[str, Any]] = (await response.json())["alerts"]
            return data

    async def metric(self, name: str, **labels: str) -> float:
        async with self.http.get(self.url + "/metrics") as response:
            text = await response.text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    async def processed_all(self, am: Alertmanager) -> bool:
        """Whether every notification ``am`` delivered here was taken and processed (nothing waits in the inbox)."""
        results = ("accepted", "duplicate")
        taken = sum([await self.metric("receiver_notifications_total", result=r) for r in results])
        delivered = await am.webhook_deliveries()
        return delivered > 0 and taken == delivered and await self.metric("receiver_inbox_backlog") == 0

    def log_tail(self, lines: int = 5) -> str:
        logs = sorted(self.workdir.glob("receiver-*.log"))
        return " | ".join(logs[-1].read_text().splitlines()[-lines:]) if logs else "no log"

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class _PrometheusProject:
    """A Prometheus-project server (Alertmanager, Prometheus) on loopback: started, ready at /-/ready, stopped."""

    def __init__(self, binary: str, workdir: Path, http: aiohttp.ClientSession) -> None:
        self.binary = binary
        self.workdir = workdir
        self.workdir.mkdir()
        self.http = http
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def _run(self, *args: str) -> None:
        """Start the binary with ``args`` (logging to a file of its own), and wait until it is ready."""
        name = Path(self.binary).name
        log = (self.workdir / f"{name}.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            *args,
            f"--web.listen-address=127.0.0.1:{self.port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        await eventually(self._ready, f"{name} on port {self.port} to be ready", 30)

    async def _ready(self) -> bool:
        async with self.http.get(self.url + "/-/ready") as response:
            return response.status == 200

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class Alertmanager(_PrometheusProject):
    """A real Alertmanager (Debian's prometheus-alertmanager) on loopback."""

    def __init__(self, workdir: Path, http: aiohttp.ClientSession, name: str = "am") -> None:
        super().__init__(require_binary("prometheus-alertmanager"), workdir / name, http)
        self.cluster_port = free_port()

    async def start(self, config: dict[str, Any], *, peers: list[int] | None = None, peer_timeout: str = "15s") -> None:
        """Start with ``config``; clustered with ``peers`` (their cluster ports) when given."""
        (self.workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        cluster = (
            [f"--cluster.listen-address=127.0.0.1:{self.cluster_port}", "--cluster.gossip-interval=50ms"]
            + [f"--cluster.peer=127.0.0.1:{p}" for p in peers]
            + [f"--cluster.peer-timeout={peer_timeout}", "--cluster.settle-timeout=3s"]
            if peers is not None
            else ["--cluster.listen-address="]
        )
        await self._run(
            f"--config.file={self.workdir / 'alertmanager.yml'}", f"--storage.path={self.workdir / 'data'}", *cluster
        )

    async def now(self) -> float:
        """Alertmanager's own time (its ``Date`` header, to the second), as ``time.time()`` gives it.

        Alerts are stamped as Prometheus would, in the time of the process that judges them: the
        suite also runs with this process's clock set ahead (faketime), which reaches no Go binary.
        """
        async with self.http.get(self.url + "/-/healthy") as response:
            return email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()

    async def push(self, alerts: list[dict[str, Any]]) -> None:
        """Post alerts as Prometheus does (``POST /api/v2/alerts``)."""
        async with self.http.post(self.url + "/api/v2/alerts", json=alerts) as response:
            assert response.status == 200, await response.text()

    async def webhook_deliveries(self) -> float:
        """How many notifications this peer delivered to webhooks."""
        async with self.http.get(self.url + "/metrics") as response:
            text = await response.text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "alertmanager_notifications_total" and sample.labels == {"integration": "webhook"}:
                    return float(sample.value)
        return 0.0


class Prometheus(_PrometheusProject):
    """A real Prometheus (Debian's ``prometheus``) on loopback: scrapes targets and evaluates rule files."""

    def __init__(self, workdir: Path, http: aiohttp.ClientSession) -> None:
        super().__init__(require_binary("prometheus", "prometheus"), workdir / "prometheus", http)

    async def start(self, job: str, target: str, labels: dict[str, str], rules: dict[str, Any]) -> None:
        """Scrape ``target`` (host:port) every second as ``job`` with ``labels``; evaluate ``rules`` every second."""
        (self.workdir / "rules.yml").write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.workdir / "rules.yml")],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target], "labels": labels}]}],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        config_file, storage = self.workdir / "prometheus.yml", self.workdir / "data"
        await self._run(f"--config.file={config_file}", f"--storage.tsdb.path={storage}")

    async def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``: its ``data``."""
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as response:
            body = await response.json()
            assert body["status"] == "success", body
            return body["data"]


def alertmanager_config(webhook_url: str, **route: Any) -> dict[str, Any]:
    """An Alertmanager config with one webhook receiver and fast timings."""
    return {
        "route": {
            "receiver": "receiver",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            **route,
        },
        "receivers": [
            {
                "name": "receiver",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": "e2e-token"}},
                    }
                ],
            }
        ],
    }


class DelayProxy:
    """Forwards HTTP requests to a target after a delay: a slow network hop.

    Two clustered Alertmanagers only both deliver a notification when the
    first delivery is still in flight when the second peer's turn comes;
    that is how HA duplicates happen in production, and how a test makes them.
    """

    def __init__(self, target: str, delay: float, http: aiohttp.ClientSession) -> None:
        self.target = target
        self.delay = delay
        self.http = http
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(self.delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with self.http.request(request.method, self.target + request.path_qs, data=body, headers=headers) as r:
            return web.Response(status=r.status, body=await r.read(), content_type=r.content_type)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def read_events(data_dir: Path) -> list[tuple[str, str]]:
    """(fingerprint, kind) of every alert event in a stopped receiver's store."""
    store = SQLiteStore(data_dir / "receiver.db")
    await store.open()
    try:
        return [(e.fingerprint, e.kind) for e in await store.events(limit=1_000_000)]
    finally:
        await store.close()


async def read_inbox(data_dir: Path) -> list[bytes]:
    """Every webhook body in a stopped receiver's inbox, oldest first."""
    store = SQLiteStore(data_dir / "receiver.db")
    await store.open()
    try:
        return [e.body for e in await store.inbox(after=0, limit=1_000_000)]
    finally:
        await store.close()


def iso(t: float) -> str:
    """An RFC 3339 UTC timestamp for a time.time() value."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
