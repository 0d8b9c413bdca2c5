"""``python -m bench.processing``: sustained processing (dedup, correlate, classify, persist) and how it scales.

The web process is not involved: notifications are appended to the inbox
first, then the engine's own code (``Processor`` with its incident book,
over the SQLite store as the engine opens it) drains them, and only the
drain is timed. Two figures, as issue #3 asks:

- throughput: alert updates processed per second, every one through dedup,
  the incident book (suppression, correlation, severity, cascade) and the
  transaction that records the alert, the incident rows and the timeline;
- scaling: the cost per alert update with ``--small`` (1,000) alerts open
  and with ``--large`` (100,000), the same measured workload on top of each.

The workload is a steady state: each notification brings 5 new firing
alerts or resolves 5 fired earlier in the run, in turn, so the number of
open alerts stays where it was put. Alerts spread over 50 namespaces (the
default correlation scope), 8 services each, 6 alert names with source
severities and annotations that the example's severity rules read; one
alert in 50 is a DatabaseDown root cause whose namespace's latency and
error alerts become its symptoms. No duplicates: they cost nearly nothing
(no write), and would flatter the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.run import scratch
from receiver.alerts.wire import fingerprint
from receiver.clock import utc_now
from receiver.config import Settings, load
from receiver.engine.process import GC_THRESHOLDS, tune_gc
from receiver.engine.processor import Processor
from receiver.incidents.book import Book
from receiver.metrics import Tally
from receiver.store import IncidentQuery
from receiver.store.sqlite import SQLiteStore

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "receiver.yml"
ALERTS = 5
NAMES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("HighLatency", "warning", {"value": "0.9", "baseline": "0.2"}),
    ("HighErrorRate", "critical", {"value": "12"}),
    ("KubePodCrashLooping", "warning", {}),
    ("KubeMemoryOvercommit", "info", {}),
    ("TargetDown", "critical", {}),
    ("DiskWillFillIn4Hours", "warning", {}),
)


def _alert(n: int, status: str) -> dict[str, Any]:
    name, severity, annotations = NAMES[n % len(NAMES)] if n % 1000 != 7 else ("DatabaseDown", "critical", {})
    labels = {
        "alertname": name,
        "namespace": f"team-{n % 50}",
        "service": f"svc-{(n // 50) % 8}",
        "pod": f"pod-{n}",
        "severity": severity,
        "cluster": "prod-eu-1",
    }
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{name} on pod-{n}", **annotations},
        "startsAt": "2026-11-22T09:22:35.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-22T09:40:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint(labels),
    }


def _notification(first: int, status: str) -> bytes:
    """A notification of the 5 alerts from ``first`` on, all ``status``."""
    alerts = [_alert(n, status) for n in range(first, first + ALERTS)]
    return json.dumps({
        "receiver": "receiver", "status": status, "alerts": alerts, "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "version": "4",
        "groupKey": f"{{}}:{{n=\"{first}\"}}", "truncatedAlerts": 0,
    }).encode()  # fmt: skip


def steady(start: int, count: int, lag: int = 20) -> list[bytes]:
    """``count`` notifications from alert ``start`` on: 5 new alerts, resolved ``lag`` notifications later."""
    bodies: list[bytes] = []
    fired = resolved = 0
    while len(bodies) < count:
        if fired - resolved < lag:
            bodies.append(_notification(start + fired * ALERTS, "firing"))
            fired += 1
        else:
            bodies.append(_notification(start + resolved * ALERTS, "resolved"))
            resolved += 1
    return bodies


@dataclass
class Run:
    """One measured drain."""

    open_before: int
    updates: int
    seconds: float
    cpu_seconds: float
    """Of every thread of this process: steadier than the wall clock on a shared machine."""
    incidents: int
    suppressed: int

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds

    @property
    def micros_per_update(self) -> float:
        return self.seconds / self.updates * 1e6

    @property
    def cpu_micros_per_update(self) -> float:
        return self.cpu_seconds / self.updates * 1e6


def _settings(workdir: Path) -> Settings:
    raw = yaml.safe_load(EXAMPLE.read_text())
    return load(None, {}, {"data_dir": str(workdir), "incidents": raw["incidents"], "log_level": "warning"})


async def _fill(store: SQLiteStore, bodies: list[bytes]) -> None:
    now = utc_now()
    for i in range(0, len(bodies), 2000):
        await asyncio.gather(*(store.accept(b, now) for b in bodies[i : i + 2000]))


async def measure(workdir: Path, open_alerts: int, notifications: int, batch: int) -> Run:
    """Open ``open_alerts`` alerts (untimed), then time the drain of ``notifications`` steady-state notifications."""
    settings = _settings(workdir)
    store = SQLiteStore(settings.database_path, synchronous=settings.store.synchronous)
    await store.open()
    tally = Tally()
    processor = Processor(
        store,
        policy=settings.alerts.policy(),
        report=lambda _, step: _add(tally, step),
        batch_size=batch,
        book=Book(settings.incidents.policy()),
    )
    try:
        await _fill(store, [_notification(n * ALERTS, "firing") for n in range(open_alerts // ALERTS)])
        await processor.drain()
        workload = steady(10_000_000, notifications)
        await _fill(store, workload)
        await store.checkpoint()  # what filling wrote is not the drain's work
        tally.suppressed = 0
        gc.collect()
        started, cpu = time.perf_counter(), time.process_time()
        await processor.drain()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        incidents = len(await store.incidents(IncidentQuery(limit=1_000_000)))
    finally:
        await store.close()
    return Run(open_alerts, notifications * ALERTS, seconds, cpu, incidents, tally.suppressed)


def _add(total: Tally, step: Tally) -> None:
    total.incidents.update(step.incidents)
    total.suppressed += step.suppressed


async def one(args: argparse.Namespace) -> None:
    """Measure one case in this process and print it as a JSON line (``--one``)."""
    tune_gc()  # the engine process's collector settings: this is the engine's code, run in this process
    with scratch("processing") as workdir:
        result = await measure(workdir, args.one, args.notifications, args.batch)
    print(json.dumps(dataclasses.asdict(result)))


def _case(args: argparse.Namespace, open_alerts: int) -> Run:
    """One case in a fresh process, as a fresh engine would meet it."""
    command = [sys.executable, "-m", "bench.processing", "--one", str(open_alerts)]
    command += ["--notifications", str(args.notifications), "--batch", str(args.batch)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return Run(**json.loads(out.splitlines()[-1]))


def run(args: argparse.Namespace) -> int:
    """Every case ``--repeat`` times, alternating, each in a process of its own; the report and the verdicts."""
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}, gc {GC_THRESHOLDS}")
    workload = f"{args.notifications:,} notifications of {ALERTS} alerts, half new, half resolving"
    print(f"workload: {workload}; batches of {args.batch}; every case in a fresh process")
    results: dict[int, list[Run]] = {args.small: [], args.large: []}
    for attempt in range(args.repeat):
        for open_alerts in (args.small, args.large):
            result = _case(args, open_alerts)
            results[open_alerts].append(result)
            print(
                f"  run {attempt + 1}: {open_alerts:>7,} open: {result.per_second:>8,.0f} alert updates/s"
                f" ({result.micros_per_update:.1f} us each, {result.cpu_micros_per_update:.1f} us CPU),"
                f" {result.incidents} incidents, {result.suppressed} symptoms"
            )
    small = min(r.micros_per_update for r in results[args.small])
    large = min(r.micros_per_update for r in results[args.large])
    rates = sorted(r.per_second for runs in results.values() for r in runs)
    median = statistics.median(rates)
    ratio = large / small
    print(
        f"throughput: median {median:,.0f} alert updates/s, slowest {rates[0]:,.0f} (target >= 10,000):"
        f" {_verdict(median >= 10_000)}"
    )
    print(
        f"cost per update, best of {args.repeat}: {small:.1f} us with {args.small:,} open, {large:.1f} us with"
        f" {args.large:,} open: ratio {ratio:.2f} (target <= 1.5): {_verdict(ratio <= 1.5)}"
    )
    return 0 if median >= 10_000 and ratio <= 1.5 else 1


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.processing", description=__doc__)
    parser.add_argument("--notifications", type=int, default=10_000, help="measured notifications per run")
    parser.add_argument("--small", type=int, default=1_000, help="open alerts of the small case")
    parser.add_argument("--large", type=int, default=100_000, help="open alerts of the large case")
    parser.add_argument("--batch", type=int, default=256, help="inbox entries per transaction (store.process_batch)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child measuring one case
    args = parser.parse_args()
    if args.one is not None:
        asyncio.run(one(args))
        return
    sys.exit(run(args))


if __name__ == "__main__":
    main()
