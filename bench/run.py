"""Runs the whole benchmark: bare ceiling vs receiver, latency at half peak, RSS.

Both servers run as separate processes on 127.0.0.1 and meet the same load
from the same generator in the same run. The receiver runs as deployed:
SQLite with ``synchronous: full`` (every acknowledged notification survives
power loss), bearer auth, JSON logs to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.load import (
    ALERTS_PER_NOTIFICATION,
    Result,
    closed_loop,
    distinct_notifications,
    notifications,
    open_loop,
    send_all,
)

RECEIVER = Path(sys.executable).parent / "receiver"


@dataclass
class Server:
    """A server process under test."""

    name: str
    url: str
    proc: asyncio.subprocess.Process

    def cpu_seconds(self) -> tuple[float, float]:
        """(this process, its children) CPU seconds so far: the web process, and the engine."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return _cpu_seconds(self.proc.pid), sum(_cpu_seconds(int(pid)) for pid in children)

    def rss_mib(self) -> tuple[float, float]:
        """(current, peak) resident memory in MiB of the server and its children (the engine), from /proc.

        The peak is the sum of each process's own peak: an upper bound of the peak of the sum.
        """
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        now = peak = 0.0
        for pid in [self.proc.pid, *map(int, children)]:
            fields = dict(
                line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
            )
            now += int(fields["VmRSS"].split()[0]) / 1024
            peak += int(fields["VmHWM"].split()[0]) / 1024
        return now, peak


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cpu:
    """Cores used during a phase: by the generator, the server process and its children (the engine)."""

    generator: float
    server: float
    children: float

    def __str__(self) -> str:
        engine = f", engine {self.children:.2f}" if self.children else ""
        return f"generator {self.generator:.2f}, server {self.server:.2f}{engine}"


async def _measured(server: Server, phase: Awaitable[Result]) -> tuple[Result, Cpu]:
    """Run ``phase`` against ``server``; its result and the cores each process used meanwhile."""
    me0, (server0, children0), t0 = _cpu_seconds(os.getpid()), server.cpu_seconds(), time.perf_counter()
    result = await phase
    me1, (server1, children1), elapsed = _cpu_seconds(os.getpid()), server.cpu_seconds(), time.perf_counter() - t0
    return result, Cpu((me1 - me0) / elapsed, (server1 - server0) / elapsed, (children1 - children0) / elapsed)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _serving(name: str, command: Sequence[str], port: int, log: Path) -> AsyncIterator[Server]:
    env = {**os.environ, "RECEIVER_WEBHOOK_TOKEN": "bench-token"}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL, stderr=out, env=env)
    server = Server(name, f"http://127.0.0.1:{port}/api/v1/alerts", proc)
    try:
        await _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        yield server
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def _wait_ready(url: str, proc: asyncio.subprocess.Process, seconds: float = 10.0) -> None:
    """Poll ``url`` until it answers 200, for at most ``seconds``; fails at once if the server exits."""
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} never became ready")


@contextlib.asynccontextmanager
async def receiver_serving(
    workdir: Path, config: dict[str, Any], env: dict[str, str]
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``receiver serve`` with ``config`` (YAML in ``workdir``), its data and log in ``workdir``, on a free port.

    Yields its base URL and process once ``/readyz`` answers 200; stops it (SIGTERM) afterwards.
    """
    settings = workdir / "receiver.yml"
    settings.write_text(yaml.safe_dump(config))
    port = _free_port()
    with (workdir / "receiver.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(RECEIVER), "serve", "--config", str(settings), "--listen", f"127.0.0.1:{port}",
            "--data-dir", str(workdir / "data"), stderr=log, env=env,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_ready(url + "/readyz", proc, 30)
        yield url, proc
    finally:
        proc.terminate()
        await proc.wait()


def _receiver(workdir: Path, port: int, tag: str) -> tuple[list[str], Path]:
    config = workdir / f"{tag}.yml"
    config.write_text(f"data_dir: {workdir / tag}\nstore:\n  synchronous: full\n")
    return [str(RECEIVER), "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], workdir / f"{tag}.log"


def _row(name: str, peak: Result, half: Result | None) -> str:
    at_half = (
        f"{half.rate:,.0f} | {half.percentile(50) * 1000:.1f} | {half.percentile(99) * 1000:.1f}"
        if half is not None
        else "— | — | —"
    )
    errors = peak.errors + (half.errors if half is not None else 0)
    return (
        f"| {name} | {peak.rate:,.0f} | {peak.rate * ALERTS_PER_NOTIFICATION:,.0f} | {peak.percentile(50) * 1000:.1f}"
        f" | {peak.percentile(99) * 1000:.1f} | {at_half} | {errors} |"
    )


@contextlib.contextmanager
def scratch(name: str = "", *, keep: bool = False) -> Iterator[Path]:
    """A scratch directory for one benchmark (``receiver-bench-NAME-...``), removed afterwards unless ``keep``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"receiver-bench-{name}-" if name else "receiver-bench-"))
    try:
        yield workdir
    finally:
        if keep:
            print(f"databases and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def run(args: argparse.Namespace) -> int:
    """Both phases in a scratch directory, removed afterwards: one run leaves about 0.8 GB of databases."""
    with scratch(keep=args.keep_data) as workdir:
        return await _run(args, workdir)


async def _run(args: argparse.Namespace, workdir: Path) -> int:
    peak_bodies = notifications(args.count, offset=0)
    half_bodies = notifications(args.count, offset=1_000_000)
    port = _free_port()
    bare_cmd = [sys.executable, "-m", "bench.bare", "--port", str(port)]
    async with _serving("bare", bare_cmd, port, workdir / "bare.log") as bare:
        await closed_loop(bare.url, _warmup(), concurrency=args.concurrency, seconds=2)
        bare_peak, bare_cpu = await _measured(
            bare, closed_loop(bare.url, peak_bodies, concurrency=args.concurrency, seconds=args.seconds)
        )
    port = _free_port()
    cmd, log = _receiver(workdir, port, "throughput")
    async with _serving("receiver", cmd, port, log) as receiver:
        await closed_loop(receiver.url, _warmup(), concurrency=args.concurrency, seconds=2)
        await _drain(receiver)
        recv_peak, recv_cpu = await _measured(
            receiver, closed_loop(receiver.url, peak_bodies, concurrency=args.concurrency, seconds=args.seconds)
        )
        backlog_after_peak, drain_seconds = await _drain(receiver)
        recv_half = await open_loop(receiver.url, half_bodies, rate=recv_peak.rate / 2, seconds=args.seconds)
        backlog_after_half, _ = await _drain(receiver)

    port = _free_port()
    cmd, log = _receiver(workdir, port, "rss")
    async with _serving("receiver", cmd, port, log) as receiver:
        filled = await send_all(
            receiver.url,
            distinct_notifications(args.active // ALERTS_PER_NOTIFICATION, offset=5_000_000),
            concurrency=args.concurrency,
        )
        await _drain(receiver)
        active = await _metric(receiver, "receiver_active_alerts")
        rss, peak_rss = receiver.rss_mib()

    ratio = recv_peak.rate / bare_peak.rate
    p99 = recv_half.percentile(99) * 1000
    lines = [
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        f"load: {ALERTS_PER_NOTIFICATION} alerts per notification, 20% duplicates,"
        f" {args.concurrency} connections, {args.seconds:g}s per phase",
        "",
        "| server | peak notifications/s | peak alerts/s | peak p50 ms | peak p99 ms"
        " | half-peak rate/s | half-peak p50 ms | half-peak p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|",
        _row("bare aiohttp + json.loads", bare_peak, None),
        _row("receiver (SQLite, synchronous=full)", recv_peak, recv_half),
        "",
        f"ratio receiver/bare (peak notifications/s): {ratio:.2f}  (target >= 0.5: {_verdict(ratio >= 0.5)})",
        f"receiver p99 at half its peak rate: {p99:.1f} ms  (target <= 25 ms: {_verdict(p99 <= 25)})",
        f"cores used at peak: bare: {bare_cpu}; receiver: {recv_cpu}",
        f"processing: {backlog_after_peak:,.0f} notifications left in the inbox after the peak phase,"
        f" processed in {drain_seconds:.1f}s once ingest stopped"
        f" ({backlog_after_peak / max(drain_seconds, 1e-9):,.0f} notifications/s,"
        f" {backlog_after_peak * ALERTS_PER_NOTIFICATION / max(drain_seconds, 1e-9):,.0f} alerts/s);"
        f" {backlog_after_half:,.0f} left after the half-peak phase",
        f"receiver RSS (web + engine) with {active:,.0f} active alerts"
        f" ({filled.ok:,} notifications in {filled.seconds:.1f}s):"
        f" {rss:.0f} MiB now, {peak_rss:.0f} MiB peak  (target <= 300 MB: {_verdict(peak_rss * 1.048576 <= 300)})",
    ]
    print("\n".join(lines))
    return 0


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _warmup() -> list[bytes]:
    return list(distinct_notifications(2000, offset=9_000_000))


async def _metric(server: Server, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(server.url.replace("/api/v1/alerts", "/metrics")) as r:
        for line in (await r.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise RuntimeError(f"{name} is not exported")


async def _drain(server: Server, seconds: float = 300) -> tuple[float, float]:
    """Wait until the inbox is processed: (backlog when asked, seconds it took)."""
    started = time.perf_counter()
    backlog = first = await _metric(server, "receiver_inbox_backlog")
    while backlog > 0:
        if time.perf_counter() - started > seconds:
            raise RuntimeError(f"the inbox still holds {backlog:.0f} notifications after {seconds}s")
        await asyncio.sleep(0.05)
        backlog = await _metric(server, "receiver_inbox_backlog")
    return first, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured phase")
    parser.add_argument("--concurrency", type=int, default=64, help="connections in the closed-loop phase")
    parser.add_argument("--count", type=int, default=60_000, help="notifications generated per phase")
    parser.add_argument("--active", type=int, default=100_000, help="distinct active alerts for the RSS phase")
    parser.add_argument("--keep-data", action="store_true", help="keep the databases and logs of the run")
    sys.exit(asyncio.run(run(parser.parse_args())))
