"""The load generator: realistic notifications, closed-loop peak and open-loop rate.

Notifications carry 5 alerts each, like a real group; 20% of requests repeat
an earlier notification byte for byte, as HA peers and repeat_interval do.
The open-loop mode sends on a fixed schedule whatever the server does and
measures latency from the scheduled instant, so a stalled server cannot hide
its stall (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.http import Connection, ProtocolError, prepare
from receiver.alerts.wire import fingerprint

ALERTS_PER_NOTIFICATION = 5
DUPLICATE_SHARE = 0.2


def notifications(count: int, *, offset: int = 0, duplicate_share: float = DUPLICATE_SHARE) -> list[bytes]:
    """``count`` encoded notifications, a ``duplicate_share`` of them repeats of recent ones."""
    rng = random.Random(offset)
    bodies: list[bytes] = []
    for i in range(count):
        if bodies and rng.random() < duplicate_share:
            bodies.append(rng.choice(bodies[-1000:]))
        else:
            bodies.append(_notification(offset + i))
    return bodies


def distinct_notifications(count: int, offset: int = 0) -> Iterator[bytes]:
    """Notifications whose every alert is new."""
    return (_notification(offset + i) for i in range(count))


def _notification(n: int) -> bytes:
    service = f"svc-{n % 40}"
    alerts = [
        _with_fingerprint(a)
        for a in (
            {
                "status": "firing",
                "labels": {
                    "alertname": "KubePodCrashLooping",
                    "namespace": f"team-{n % 7}",
                    "service": service,
                    "pod": f"{service}-{n}-{k}",
                    "severity": "warning",
                    "cluster": "prod-eu-1",
                },
                "annotations": {
                    "summary": f"Pod {service}-{n}-{k} is crash looping",
                    "runbook_url": "https://runbooks.example.com/KubePodCrashLooping",
                },
                "startsAt": "2026-11-22T09:22:35.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=kube_pod_container_status_restarts_total",
            }
            for k in range(ALERTS_PER_NOTIFICATION)
        )
    ]
    return json.dumps(
        {
            "receiver": "receiver",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"alertname": "KubePodCrashLooping", "namespace": f"team-{n % 7}"},
            "commonLabels": {"alertname": "KubePodCrashLooping", "severity": "warning"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="KubePodCrashLooping", namespace="team-{n % 7}", n="{n}"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


def _with_fingerprint(alert: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager always sends the fingerprint; so does the benchmark."""
    return {**alert, "fingerprint": fingerprint(alert["labels"])}


@dataclass
class Result:
    """What one load phase measured."""

    sent: int
    ok: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


TOKEN = "bench-token"


async def _send(connection: Connection, request: bytes, *, since: float) -> float | None:
    """Send one prepared request; seconds from ``since`` to the whole answer, or None unless it was 200.

    A failed connection is closed; the caller opens another (``connection.closed``).
    """
    try:
        status = await connection.request(request)
    except (OSError, ProtocolError):
        connection.close()
        return None
    return time.perf_counter() - since if status == 200 else None


async def closed_loop(url: str, bodies: list[bytes], *, concurrency: int, seconds: float) -> Result:
    """``concurrency`` workers send back to back for ``seconds``: the peak rate."""
    return await _workers(url, iter(bodies), concurrency=concurrency, deadline=time.perf_counter() + seconds)


async def send_all(url: str, bodies: Iterator[bytes], *, concurrency: int) -> Result:
    """Send every body once, ``concurrency`` at a time."""
    return await _workers(url, bodies, concurrency=concurrency, deadline=math.inf)


async def _workers(url: str, bodies: Iterator[bytes], *, concurrency: int, deadline: float) -> Result:
    latencies: list[float] = []
    errors = 0
    requests = (prepare(url, body, TOKEN) for body in bodies)

    async def worker() -> None:
        nonlocal errors
        connection = await Connection.open(url)
        try:
            for request in requests:
                if time.perf_counter() >= deadline:
                    return
                latency = await _send(connection, request, since=time.perf_counter())
                if connection.closed:
                    connection = await Connection.open(url)
                if latency is None:
                    errors += 1
                else:
                    latencies.append(latency)
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Result(len(latencies) + errors, len(latencies), errors, elapsed, latencies)


async def open_loop(url: str, bodies: list[bytes], *, rate: float, seconds: float) -> Result:
    """Send at a fixed ``rate`` for ``seconds``, latency counted from each scheduled time.

    Each request takes an idle connection, or opens one when all are busy
    (64 are opened beforehand), as a client with a connection pool does.
    """
    count = min(len(bodies), int(rate * seconds))
    requests = [prepare(url, body, TOKEN) for body in bodies[:count]]
    latencies: list[float] = []
    errors = 0
    idle = [await Connection.open(url) for _ in range(64)]

    async def one(request: bytes, scheduled: float) -> None:
        nonlocal errors
        connection = idle.pop() if idle else await Connection.open(url)
        latency = await _send(connection, request, since=scheduled)
        if not connection.closed:
            idle.append(connection)
        if latency is None:
            errors += 1
        else:
            latencies.append(latency)

    start = time.perf_counter() + 0.05
    in_flight: set[asyncio.Task[None]] = set()
    for i, request in enumerate(requests):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(request, scheduled))
        in_flight.add(task)  # kept small: gathering thousands of finished tasks at the end stalls the loop
        task.add_done_callback(in_flight.discard)
    while in_flight:
        await asyncio.wait(set(in_flight))
    elapsed = time.perf_counter() - start
    for connection in idle:
        connection.close()
    return Result(count, len(latencies), errors, elapsed, latencies)
