"""``python -m bench.hostile``: the webhook's latency while hostile clients hold the server (issue #12).

Issue #12 names its figures: under a 1,024-descriptor limit, 1,100 idle
unauthenticated connections and uploads trickling one byte every 2 s, or a
read-token holder sending ``GET /api/v1/alerts?filter=alertname=~"(.*.*)+!"``,
must not keep a well-behaved client (Alertmanager) waiting: it is answered
within 1 s. The tests (``tests/e2e/test_stall_e2e.py``,
``tests/test_matchers.py``) check a few requests against that bound; this
benchmark measures the distribution, so the margin is known and recorded.

A real ``receiver serve`` (webhook and API tokens set, server settings as
deployed unless given, RLIMIT_NOFILE 1024) runs on 127.0.0.1. N sequential
webhook POSTs (each on a fresh connection, as a client that meets the
connection limit would) are timed in three conditions:

- quiet;
- while 1,100 connections that never send a byte and 4 uploads trickling one
  byte every 2 s are held open, each re-opened as soon as the server closes it;
- while a client with the API token sends the pathological filter in a loop,
  with a few hundred alerts stored for it to scan.

It prints p50, p99 and max per condition and what the server closed
(``receiver_http_connections_closed_total{reason}``), and exits 1 if any
webhook request failed. All traffic stays on 127.0.0.1; every loop is bounded
in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.run import _free_port, _wait_ready, scratch

RECEIVER = Path(sys.executable).parent / "receiver"
HOST = "127.0.0.1"
WEBHOOK_TOKEN = "bench-webhook-token"
API_TOKEN = "bench-api-token"
OPEN_FILES = 1024
PATHOLOGICAL = 'alertname=~"(.*.*)+!"'
REQUEST_TIMEOUT = 10.0
"""Seconds a webhook request may take before it counts as failed."""
MAX_HOSTILE_SECONDS = 600.0
"""No hostile loop runs longer than this, whatever the options."""
MAX_REOPENS = 2_000_000
"""No condition opens more hostile connections than this."""


def _alert(name: str, **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} is firing"},
        "startsAt": "2026-11-30T09:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
    }


def _notification(*alerts: dict[str, Any]) -> bytes:
    """A version-4 Alertmanager notification around ``alerts``, encoded."""
    return json.dumps({
        "receiver": "receiver", "status": "firing", "alerts": list(alerts),
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093", "version": "4",
        "groupKey": '{}:{alertname="Bench"}', "truncatedAlerts": 0,
    }).encode()  # fmt: skip


@dataclass
class Condition:
    name: str
    latencies: list[float] = field(default_factory=list)
    """Seconds, of the webhook requests answered 200."""
    failures: list[str] = field(default_factory=list)
    closed: dict[str, float] = field(default_factory=dict)
    """The server's ``receiver_http_connections_closed_total`` growth during the condition, by reason."""
    notes: list[str] = field(default_factory=list)


@dataclass
class Hostile:
    """What the hostile clients of one condition did."""

    opened: int = 0
    closed_by_server: int = 0
    connect_failures: int = 0
    trickle_answers: dict[str, int] = field(default_factory=dict)
    listings: list[float] = field(default_factory=list)
    listing_failures: int = 0
    stopped: bool = False
    """Set when the condition ends: every hostile loop stops at its next look."""


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# -- the well-behaved client ------------------------------------------------------------------------


async def _webhook_latencies(url: str, condition: Condition, requests: int, spacing: float, tag: str) -> None:
    """``requests`` sequential webhook POSTs, each on a fresh connection, ``spacing`` s apart."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for i in range(requests):
            payload = _notification(_alert(f"Bench{tag}{i % 20}", namespace="bench", severity="warning"))
            started = time.perf_counter()
            try:
                async with session.post(url + "/api/v1/alerts", data=payload, headers=headers) as response:
                    text = await response.text()
                    if response.status == 200:
                        condition.latencies.append(time.perf_counter() - started)
                    else:
                        condition.failures.append(f"{response.status}: {text[:200]}")
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                condition.failures.append(f"{type(error).__name__}: {error}"[:200])
            await asyncio.sleep(spacing)


# -- hostile clients ---------------------------------------------------------------------------------


async def _idle(port: int, stats: Hostile, deadline: float, reopen_delay: float) -> None:
    """One connection that never sends a byte, re-opened ``reopen_delay`` s after the server closes it."""
    loop = asyncio.get_running_loop()
    while _going(stats, deadline):
        s = socket.socket()
        s.setblocking(False)
        try:
            try:
                async with asyncio.timeout(3):
                    await loop.sock_connect(s, (HOST, port))
            except (TimeoutError, OSError):
                stats.connect_failures += 1
                await asyncio.sleep(0.1)
                continue
            stats.opened += 1
            while _going(stats, deadline):  # until the server closes it, looking at the clock every 5 s
                try:
                    async with asyncio.timeout(5):
                        await loop.sock_recv(s, 1)  # b"": closed (nothing is ever answered to a silent connection)
                except TimeoutError:
                    continue
                except ConnectionError:
                    pass
                stats.closed_by_server += 1
                break
        finally:
            s.close()
        await asyncio.sleep(reopen_delay)


def _going(stats: Hostile, deadline: float) -> bool:
    return not stats.stopped and stats.opened < MAX_REOPENS and time.monotonic() < deadline


async def _trickle(port: int, stats: Hostile, deadline: float, interval: float) -> None:
    """An upload sending one byte of its body every ``interval`` s, started again whenever the server ends it."""
    head = (
        f"POST /api/v1/alerts HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    while _going(stats, deadline):
        try:
            async with asyncio.timeout(3):
                reader, writer = await asyncio.open_connection(HOST, port)
        except (TimeoutError, OSError):
            stats.connect_failures += 1
            await asyncio.sleep(0.1)
            continue
        stats.opened += 1
        opened = time.monotonic()
        try:
            writer.write(head)
            answer = b"still open"
            for _ in range(999):  # never the whole body
                if not _going(stats, deadline):
                    return
                try:
                    async with asyncio.timeout(interval):
                        answer = await reader.read(4096)
                    break  # the server answered or closed
                except TimeoutError:
                    writer.write(b"{")
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace")[:40] if answer else "closed"
            status += f" after {time.monotonic() - opened:.0f} s"
            stats.trickle_answers[status] = stats.trickle_answers.get(status, 0) + 1
            stats.closed_by_server += 1
        except ConnectionError:
            stats.trickle_answers["reset"] = stats.trickle_answers.get("reset", 0) + 1
            stats.closed_by_server += 1
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()


async def _filtering(url: str, stats: Hostile, deadline: float, max_requests: int) -> None:
    """The API token's holder sending the pathological filter again and again (keep-alive)."""
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(max_requests):
            if stats.stopped or time.monotonic() >= deadline:
                return
            started = time.perf_counter()
            try:
                async with session.get(url + "/api/v1/alerts", params={"filter": PATHOLOGICAL}, headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        stats.listings.append(time.perf_counter() - started)
                    else:
                        stats.listing_failures += 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                stats.listing_failures += 1
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _running(stats: Hostile, *jobs: Callable[[], Any]) -> AsyncIterator[None]:
    """Run ``jobs`` (coroutine functions) as tasks while the block runs; stopped, cancelled and awaited after it."""
    tasks = [asyncio.create_task(job()) for job in jobs]
    try:
        yield
    finally:
        stats.stopped = True
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                print(f"  (a hostile client ended with {type(result).__name__}: {result})", file=sys.stderr)


# -- the server ---------------------------------------------------------------------------------------


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


def _raise_own_limit(needed: int) -> None:
    """This process holds the descriptors the server lacks: raise its soft limit to ``needed`` if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


async def _closed_counts(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics") as response:
        text = await response.text()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "receiver_http_connections_closed_total":
                counts[sample.labels["reason"]] = sample.value
    return counts


async def _get_json(http: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with http.get(url, params=params, headers={"Authorization": f"Bearer {API_TOKEN}"}) as response:
        return await response.json()


async def _store_alerts(http: aiohttp.ClientSession, url: str, count: int) -> int:
    """Post ``count`` distinct alerts (50 a notification); wait (30 s at most) until listed; how many are."""
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    for start in range(0, count, 50):
        alerts = [_alert(f"PodCrashLoop{i}", namespace=f"ns{i % 10}") for i in range(start, min(count, start + 50))]
        async with http.post(url + "/api/v1/alerts", data=_notification(*alerts), headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"storing alerts: {response.status} {await response.text()}")
    total = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        total = (await _get_json(http, url + "/api/v1/alerts", limit="1"))["total"]
        if total >= count:
            break
        await asyncio.sleep(0.2)
    return int(total)


async def run(args: argparse.Namespace, workdir: Path) -> int:
    _raise_own_limit(args.idle + args.trickles + 512)
    settings: dict[str, Any] = {"log_level": "warning"}
    server = {k: v for k, v in (("header_timeout", args.header_timeout), ("body_timeout", args.body_timeout)) if v}
    if server:
        settings["server"] = server
    config = workdir / "receiver.yml"
    config.write_text(yaml.safe_dump(settings))
    port = _free_port()
    url = f"http://{HOST}:{port}"
    env = {**os.environ, "RECEIVER_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "RECEIVER_API_TOKEN": API_TOKEN}
    with (workdir / "receiver.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(RECEIVER), "serve", "--config", str(config), "--listen", f"{HOST}:{port}",
            "--data-dir", str(workdir / "data"), stdout=asyncio.subprocess.DEVNULL, stderr=log, env=env,
            preexec_fn=_limit_open_files,
        )  # fmt: skip
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await _wait_ready(url + "/readyz", proc, seconds=30)
            conditions = await _measure(args, http, url, port)
        _report(args, conditions)
        return 1 if any(c.failures for c in conditions) else 0
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if args.keep_log:
            shutil.copy(workdir / "receiver.log", args.keep_log)


async def _measure(args: argparse.Namespace, http: aiohttp.ClientSession, url: str, port: int) -> list[Condition]:
    n, spacing = args.requests, args.spacing
    hold = min(MAX_HOSTILE_SECONDS, n * (spacing + REQUEST_TIMEOUT) + 60)  # the hostile clients' deadline

    quiet = Condition("quiet")
    began = time.monotonic()
    before = await _closed_counts(http, url)
    await _webhook_latencies(url, quiet, n, spacing, "Quiet")
    quiet.closed = _grown(before, await _closed_counts(http, url))
    quiet.notes.append(f"lasted {time.monotonic() - began:.1f} s")

    held = Condition(f"{args.idle:,} idle + {args.trickles} trickling")
    stats = Hostile()
    began = time.monotonic()
    drops = _listen_drops()
    before = await _closed_counts(http, url)
    deadline = time.monotonic() + hold
    idle_jobs = [lambda: _idle(port, stats, deadline, args.reopen_delay) for _ in range(args.idle)]
    trickle_jobs = [lambda: _trickle(port, stats, deadline, args.trickle_interval) for _ in range(args.trickles)]
    async with _running(stats, *trickle_jobs, *idle_jobs):
        for _ in range(600):  # 30 s at most for the first connections
            if stats.opened >= args.idle + args.trickles:
                break
            await asyncio.sleep(0.05)
        held.notes.append(f"{stats.opened:,} hostile connections opened before the first request")
        await _webhook_latencies(url, held, n, spacing, "Held")
    held.closed = _grown(before, await _closed_counts(http, url))
    held.notes.append(
        f"hostile connections opened {stats.opened:,}, closed by the server {stats.closed_by_server:,}, "
        f"connects that failed {stats.connect_failures:,}; trickles ended with {stats.trickle_answers or 'nothing'}"
    )
    drops_after = _listen_drops()
    if drops is not None and drops_after is not None:
        held.notes.append(
            f"connection attempts the kernel dropped at a full accept queue (ListenDrops): {drops_after - drops:,}"
        )
    held.notes.append(f"lasted {time.monotonic() - began:.1f} s")

    stored = await _store_alerts(http, url, args.stored)
    filtered = Condition(f"pathological filter ({stored} alerts stored)")
    fstats = Hostile()
    began = time.monotonic()
    before = await _closed_counts(http, url)
    deadline = time.monotonic() + hold
    async with _running(fstats, lambda: _filtering(url, fstats, deadline, 1_000_000)):
        await asyncio.sleep(0.5)
        await _webhook_latencies(url, filtered, n, spacing, "Filtered")
    filtered.closed = _grown(before, await _closed_counts(http, url))
    if fstats.listings:
        filtered.notes.append(
            f"filter requests answered 200: {len(fstats.listings):,} "
            f"(p50 {_percentile(fstats.listings, 0.5) * 1000:.1f} ms, max {max(fstats.listings) * 1000:.1f} ms), "
            f"failed: {fstats.listing_failures}"
        )
    else:
        filtered.notes.append(f"no filter request answered 200 (failed: {fstats.listing_failures})")
    filtered.notes.append(f"lasted {time.monotonic() - began:.1f} s")
    return [quiet, held, filtered]


def _listen_drops() -> int | None:
    """The kernel's ``TcpExt ListenDrops`` (SYNs dropped at a full accept queue, all sockets), if readable."""
    try:
        lines = [
            line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")
        ]
        return int(dict(zip(lines[0], lines[1], strict=True))["ListenDrops"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def _grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {reason: after[reason] - before.get(reason, 0.0) for reason in sorted(after)}


def _report(args: argparse.Namespace, conditions: list[Condition]) -> None:
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}")
    print(
        f"receiver serve under RLIMIT_NOFILE {OPEN_FILES}; {args.requests} sequential webhook POSTs per condition, "
        f"each on a fresh connection, {args.spacing:g} s apart"
    )
    for c in conditions:
        print(f"\n{c.name}:")
        if c.latencies:
            ms = [x * 1000 for x in c.latencies]
            print(
                f"  webhook: {len(ms)} answered 200, {len(c.failures)} failed; "
                f"p50 {_percentile(ms, 0.5):.1f} ms, p99 {_percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms; "
                f"over 1 s: {sum(x >= 1000 for x in ms)}"
            )
        else:
            print(f"  webhook: none answered 200, {len(c.failures)} failed")
        for failure in c.failures[:5]:
            print(f"    failed: {failure}")
        closed = ", ".join(f"{reason} {value:,.0f}" for reason, value in c.closed.items())
        print(f"  server closed (receiver_http_connections_closed_total): {closed}")
        for note in c.notes:
            print(f"  {note}")
    worst = max((max(c.latencies) for c in conditions if c.latencies), default=math.inf)
    failed = sum(len(c.failures) for c in conditions)
    verdict = "MET" if failed == 0 and worst < 1.0 else "MISSED"
    print(f"\nslowest webhook answer {worst * 1000:.1f} ms, {failed} failed (target: every one within 1 s): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="webhook requests per condition (default 200)")
    parser.add_argument("--spacing", type=float, default=0.2, help="seconds between webhook requests (default 0.2)")
    parser.add_argument("--idle", type=int, default=1_100, help="idle connections held (default 1100)")
    parser.add_argument(
        "--reopen-delay", type=float, default=0.0, help="seconds before an idle connection is re-opened (default 0)"
    )
    parser.add_argument("--trickles", type=int, default=4, help="trickling uploads held (default 4)")
    parser.add_argument("--trickle-interval", type=float, default=2.0, help="seconds between bytes (default 2)")
    parser.add_argument("--stored", type=int, default=300, help="alerts stored for the filter (default 300)")
    parser.add_argument("--header-timeout", help="server.header_timeout (default: the receiver's, 10s)")
    parser.add_argument("--body-timeout", help="server.body_timeout (default: the receiver's, 30s)")
    parser.add_argument("--keep-log", help="copy the receiver's log here at the end")
    args = parser.parse_args()
    negative = min(args.idle, args.trickles, args.spacing, args.reopen_delay, args.stored) < 0
    if args.requests < 1 or negative or args.trickle_interval <= 0:
        parser.error("--requests must be >= 1; counts and intervals not negative")
    with scratch("hostile") as workdir:
        code = asyncio.run(run(args, workdir))
    sys.exit(code)


if __name__ == "__main__":
    main()
