"""``python -m bench.escalation``: escalation steps under load, and the cost of asking who is on call.

Issue #15: "With 10,000 open incidents under escalation, steps fire within 1 s of their deadline (p99),
and evaluating who is on call costs microseconds per call."

- **deadlines**: ``--incidents`` webhook bodies (kube-prometheus-stack's ``KubePodCrashLooping`` from
  tests/corpus, one pod in each of as many namespaces: the default correlation scope is the namespace,
  so each body opens an incident of its own) are appended to the inbox of a real SQLite store
  (``synchronous: full``), then the engine's own parts, as ``receiver.engine.builder.build`` wires them
  from the settings, run in this process on the real clock: the processor (incident book, planner,
  escalator), the escalation loop and the expiry loop (which ticks the book). Ten policies, routed by
  the namespace's last digit, page ``schedule:primary`` at once, wait 60 s to 120 s (a policy each),
  page ``schedule:secondary``, wait ``--last-wait``: every incident has three deadlines (the first step,
  due as it opens; the second; the end of the ladder, when the timeline says nobody acknowledged), and
  the incidents of one processing batch share theirs, so each comes as a burst of hundreds due at the
  same instant. The notification sender, the runner and the evidence worker do not run (the pages are
  written to the outbox, nobody sends them); in the engine process they share its interpreter.
  Measured for every deadline, through the store (a subclass of the SQLite store that notes what each
  transaction carries): the deadline (the escalation's ``due`` as written), the step's decision time (the
  clock the escalation loop fired it with: its timeline event's ``at``) and the time its transaction
  committed (the clock just after the commit returned). Lateness = either minus the deadline.
- **who**: microseconds per ``who(schedule, instant)`` for realistic shapes, over random instants from
  2020 to 2035, in timeit-style batches (``--calls`` instants, each shape timed ``--repeat`` times
  over all of them); per-call median and p99 of the batches' means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.hostile import _percentile
from bench.run import scratch
from receiver.clock import utc_now
from receiver.config import Settings, load
from receiver.engine.builder import build
from receiver.engine.escalating import escalation_loop
from receiver.engine.processor import expiry_loop
from receiver.incidents.book import Changes
from receiver.incidents.lifecycle import EventKind
from receiver.kube import Kube
from receiver.metrics import Tally
from receiver.notify.planning import Notices
from receiver.oncall.policies import Escalation
from receiver.oncall.schedules import DAILY, HOURLY, WEEKLY, Layer, OffSlot, Override, Rotation, Schedule, who
from receiver.oncall.turns import Change
from receiver.playbooks.runs import RunIntent
from receiver.store import Batch
from receiver.store.sqlite import SQLiteStore
from tests.corpus import alert, payload

STARTS_AT = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
POLICIES = 10
"""Policies, one per last digit of the namespace: the second step's deadline spread over 60–120 s."""


def first_wait(policy: int, window: int) -> int:
    """Seconds policy ``policy`` waits after its first step: ``window`` to twice that across the ten."""
    return window + round(policy * window / (POLICIES - 1))


# -- deadlines ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fire:
    """One deadline met: when it was due, when the step was decided (its event's ``at``), when committed."""

    incident: str
    due: datetime
    at: datetime
    committed: datetime
    ended: bool
    """The end of the ladder (nobody acknowledged), not a step."""


@dataclass
class Watch:
    """What the store saw: the deadline of each escalation as written, and every deadline that fired."""

    due: dict[str, datetime] = field(default_factory=dict)
    fires: list[Fire] = field(default_factory=list)
    opened: int = 0
    last_opened: datetime | None = None

    def written(self, escalations: Mapping[str, Escalation | None]) -> None:
        for incident, escalation in escalations.items():
            if escalation is None:
                self.due.pop(incident, None)
            else:
                self.due[incident] = escalation.due


class WatchedStore(SQLiteStore):
    """The SQLite store, noting the deadlines each transaction writes and the steps it records as fired."""

    watch: Watch

    async def process(self, batch: Batch) -> None:
        await super().process(batch)
        self.watch.written(batch.notices.escalations)
        opened = len(batch.changes.opened)
        if opened:
            self.watch.opened += opened
            self.watch.last_opened = utc_now()

    async def record(self, changes: Changes, runs: Sequence[RunIntent] = (), notices: Notices | None = None) -> None:
        fired = [
            (incident, event.at, "escalation" in event.text and "ended" in event.text)
            for incident, event, _ in changes.events
            if event.kind is EventKind.ESCALATION
        ]
        await super().record(changes, runs, notices)
        committed = utc_now()
        for incident, at, ended in fired:
            self.watch.fires.append(Fire(incident, self.watch.due[incident], at, committed, ended))
        if notices is not None:
            self.watch.written(notices.escalations)


def namespace(n: int) -> str:
    return f"esc-{n:05d}"


def body(n: int) -> bytes:
    """A crash-looping pod in namespace ``n``, as Alertmanager sends it."""
    fired = alert("KubePodCrashLooping", namespace=namespace(n), pod=f"api-7d4b9c6f5-{n:05d}", container="api")
    return json.dumps(payload([fired], starts_at=STARTS_AT)).encode()


def config(workdir: Path, window: int, last_wait: int) -> dict[str, Any]:
    """Settings: a Slack channel nobody sends to, two people, two schedules, ten policies routed by namespace."""
    rotation = {"participants": ["alice", "bob"], "shift": "weekly", "start": "2026-01-05T09:00"}
    policies = {
        f"p{k}": {
            "steps": [
                {"notify": ["schedule:primary"], "wait": f"{first_wait(k, window)}s"},
                {"notify": ["schedule:secondary"], "wait": f"{last_wait}s"},
            ]
        }
        for k in range(POLICIES)
    }
    return {
        "data_dir": str(workdir),
        "log_level": "warning",
        "store": {"synchronous": "full"},
        "remediation": {"playbook_dirs": []},
        "notify": {
            "channels": {
                "slack": {
                    "type": "slack",
                    "token": "xoxb-bench",
                    "channel": "C0BENCH",
                    "api_url": "http://127.0.0.1:9/api",
                }
            }
        },
        "oncall": {
            "people": {
                "alice": {"timezone": "Europe/Berlin", "slack_user": "U0ALICE"},
                "bob": {"timezone": "America/New_York", "slack_user": "U0BOB"},
            },
            "schedules": {
                "primary": {"timezone": "Europe/Berlin", "layers": [{"rotations": [rotation]}]},
                "secondary": {
                    "timezone": "Europe/Berlin",
                    "layers": [{"rotations": [{**rotation, "participants": ["bob", "alice"]}]}],
                },
            },
            "policies": policies,
            "policy_routes": [{"matchers": [f'namespace=~"esc-.*{k}"'], "policy": f"p{k}"} for k in range(POLICIES)],
        },
    }


async def _fill(store: SQLiteStore, bodies: Sequence[bytes]) -> None:
    now = utc_now()
    for i in range(0, len(bodies), 2000):
        await asyncio.gather(*(store.accept(b, now) for b in bodies[i : i + 2000]))


@dataclass(frozen=True)
class DeadlineRun:
    """One run's figures."""

    incidents: int
    open_seconds: float
    fires: list[Fire]
    missing: int
    cpu_seconds: float
    seconds: float


async def deadlines_once(args: argparse.Namespace, workdir: Path) -> DeadlineRun:
    """Open the incidents through the inbox, let every ladder run out; what the store saw."""
    settings: Settings = load(None, {}, config(workdir, args.window, args.last_wait))
    store = WatchedStore(settings.database_path, synchronous=settings.store.synchronous)
    store.watch = Watch()
    await store.open()
    engine = build(
        settings, store, clock=utc_now, kube=Kube(None, dry_run=True, clock=utc_now), report=_ignore, linger=0.0
    )
    processor = engine.processor
    expected = 3 * args.incidents
    tasks: list[asyncio.Task[None]] = []
    try:
        await _fill(store, [body(n) for n in range(args.incidents)])
        await store.checkpoint()
        began, cpu = time.perf_counter(), time.process_time()
        started = utc_now()
        alerts = settings.alerts
        tasks = [
            asyncio.create_task(processor.run()),
            asyncio.create_task(escalation_loop(processor, utc_now)),
            asyncio.create_task(expiry_loop(processor, utc_now, alerts.expiry_check_interval, alerts.retention)),
        ]
        limit = time.monotonic() + args.last_wait + first_wait(POLICIES - 1, args.window) + args.timeout
        while len(store.watch.fires) < expected and time.monotonic() < limit:
            if any(t.done() for t in tasks):
                raise RuntimeError(f"an engine task ended: {[t.exception() for t in tasks if t.done()]}")
            await asyncio.sleep(0.1)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
    watch = store.watch
    opened = ((watch.last_opened or started) - started).total_seconds()
    return DeadlineRun(watch.opened, opened, watch.fires, expected - len(watch.fires), cpu, seconds)


def _ignore(_cursor: int, _tally: Tally) -> None:
    return None


def lateness_ms(fires: Sequence[Fire], of: Callable[[Fire], datetime]) -> list[float]:
    return [(of(f) - f.due).total_seconds() * 1000 for f in fires]


def _row(what: str, ms: Sequence[float]) -> str:
    if not ms:
        return f"| {what} | 0 | — | — | — |"
    p50, p99 = _percentile(list(ms), 0.5), _percentile(list(ms), 0.99)
    return f"| {what} | {len(ms):,} | {p50:,.1f} ms | {p99:,.1f} ms | {max(ms):,.1f} ms |"


def deadlines_report(run: DeadlineRun) -> bool:
    """Print the tables; whether every deadline fired and the p99 of commits was within 1 s."""
    fires = run.fires
    seen: set[str] = set()
    first: list[Fire] = []
    later: list[Fire] = []
    for f in fires:  # in the order committed: an incident's first is its first step
        (later if f.incident in seen else first).append(f)
        seen.add(f.incident)
    bursts = sorted(_burst_sizes(later), reverse=True)
    print(
        f"{run.incidents:,} incidents opened through the inbox in {run.open_seconds:.1f} s"
        f" ({run.incidents / max(run.open_seconds, 1e-9):,.0f}/s, escalation firing alongside);"
        f" {len(fires):,} deadlines fired, {run.missing} missing; {run.seconds:.0f} s,"
        f" {run.cpu_seconds / run.seconds:.2f} cores"
    )
    seconds = sorted(_burst_sizes(later, lambda f: f.due.replace(microsecond=0)), reverse=True)
    print(
        f"later deadlines: {len(bursts)} distinct instants, largest bursts due at the same instant {bursts[:3]},"
        f" most due within one second {seconds[0] if seconds else 0}"
    )
    print("| deadlines | count | p50 | p99 | max |")
    print("|---|---|---|---|---|")
    cases = [("all, decided (event `at`)", fires, True), ("all, committed", fires, False)]
    cases += [("first step (due as the incident opens), committed", first, False)]
    cases += [
        ("second step and end of ladder, decided", later, True),
        ("second step and end of ladder, committed", later, False),
    ]
    for what, chosen, decided in cases:
        print(_row(what, lateness_ms(chosen, (lambda f: f.at) if decided else (lambda f: f.committed))))
    p99 = _percentile(lateness_ms(fires, lambda f: f.committed), 0.99) if fires else float("inf")
    met = not run.missing and p99 <= 1000
    print(f"target: every deadline's step committed within 1 s (p99): {'MET' if met else 'MISSED'}")
    return met


def _burst_sizes(fires: Sequence[Fire], key: Callable[[Fire], datetime] = lambda f: f.due) -> list[int]:
    """How many of ``fires`` share each ``key`` (their deadline, or its second)."""
    counts: dict[datetime, int] = {}
    for f in fires:
        counts[key(f)] = counts.get(key(f), 0) + 1
    return list(counts.values())


async def deadlines(args: argparse.Namespace) -> bool:
    with scratch("escalation", keep=args.keep) as workdir:
        run = await deadlines_once(args, workdir)
    return deadlines_report(run)


# -- who ------------------------------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))


def _people(n: int) -> tuple[str, ...]:
    return tuple(f"person{i:02d}" for i in range(n))


def shapes() -> dict[str, Schedule]:
    """Realistic schedules, each starting in 2020 so every instant asked is inside it."""
    start = datetime(2020, 1, 6, 9, 0)
    weekly = Rotation(_people(2), WEEKLY, start)
    daily = Rotation(
        _people(6),
        DAILY,
        start,
        days=WEEKDAYS,
        off=(OffSlot(begin=datetime.min.time().replace(hour=20), end=datetime.min.time().replace(hour=7)),),
    )
    hourly = Rotation(_people(8), HOURLY, start.replace(hour=0))
    churn = _churn(start)
    overrides = _overrides()
    return {
        "weekly, 2 people": Schedule("weekly", BERLIN, (Layer((weekly,)),)),
        "daily, 6 people, weekdays, nights off": Schedule("daily", BERLIN, (Layer((daily,)),)),
        "hourly, 8 people (New York)": Schedule("hourly", NEW_YORK, (Layer((hourly,)),)),
        "weekly, 12 people, 20 joins/leaves": Schedule("churn", BERLIN, (Layer((churn,)),)),
        "weekly + daily layers, 200 overrides": Schedule(
            "overrides", BERLIN, (Layer((weekly,)), Layer((daily,))), overrides
        ),
    }


def _churn(start: datetime) -> Rotation:
    """A weekly rotation of 12 whose people join and leave 20 times over the years."""
    people = _people(12)
    rng = random.Random(15)
    changes: list[Change] = []
    for i in range(20):
        person = people[i % len(people)]
        at = start + timedelta(days=rng.randrange(30, 5000), hours=rng.randrange(24))
        changes.append(Change(person, at, joins=i % 2 == 1))
    return Rotation(people, WEEKLY, start, changes=tuple(changes))


def _overrides() -> tuple[Override, ...]:
    """200 overrides of a few hours to a few days scattered over 2020–2035."""
    rng = random.Random(16)
    found = []
    for _ in range(200):
        begin = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randrange(16 * 365 * 24))
        found.append(Override(f"person{rng.randrange(12):02d}", begin, begin + timedelta(hours=rng.randrange(2, 96))))
    return tuple(sorted(found, key=lambda o: o.start))


def instants(count: int, seed: int = 1) -> list[datetime]:
    """Random aware instants from 2020 to 2035 (UTC, to the second)."""
    rng = random.Random(seed)
    low = int(datetime(2020, 2, 1, tzinfo=UTC).timestamp())
    high = int(datetime(2035, 12, 31, tzinfo=UTC).timestamp())
    return [datetime.fromtimestamp(rng.randrange(low, high), UTC) for _ in range(count)]


def time_who(schedule: Schedule, at: Sequence[datetime], batch: int, repeat: int) -> list[float]:
    """Microseconds per call of each batch of ``batch`` calls, ``repeat`` times over ``at``."""
    per_call: list[float] = []
    for _ in range(repeat):
        for i in range(0, len(at), batch):
            chunk = at[i : i + batch]
            began = time.perf_counter()
            for instant in chunk:
                who(schedule, instant)
            per_call.append((time.perf_counter() - began) / len(chunk) * 1e6)
    return per_call


def who_report(args: argparse.Namespace) -> bool:
    """Time every shape; whether every median is under ``--micros`` microseconds."""
    at = instants(args.calls)
    print(
        f"who(schedule, instant): {args.calls:,} random instants 2020–2035, batches of {args.batch},"
        f" {args.repeat} passes; per call"
    )
    print("| schedule | median | p99 (of batch means) | slowest batch |")
    print("|---|---|---|---|")
    ok = True
    for name, schedule in shapes().items():
        who(schedule, at[0])  # warm
        micros = time_who(schedule, at, args.batch, args.repeat)
        median, p99 = statistics.median(micros), _percentile(micros, 0.99)
        print(f"| {name} | {median:.1f} µs | {p99:.1f} µs | {max(micros):.1f} µs |")
        ok = ok and median < args.micros
    print(f"target: microseconds per call (median < {args.micros:g} µs for every shape): {'MET' if ok else 'MISSED'}")
    return ok


# -- main -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.escalation", description=__doc__)
    modes = parser.add_subparsers(dest="mode", required=True)
    timed = modes.add_parser("deadlines", help="10,000 incidents escalating at once: lateness of every step")
    timed.add_argument("--incidents", type=int, default=10_000)
    timed.add_argument("--window", type=int, default=60, help="the first wait: from this to twice this, seconds")
    timed.add_argument("--last-wait", type=int, default=30, help="seconds the second step waits (then the end)")
    timed.add_argument("--timeout", type=float, default=120.0, help="seconds allowed past the last deadline")
    timed.add_argument("--keep", action="store_true", help="keep the database")
    asked = modes.add_parser("who", help="microseconds per who(schedule, instant)")
    asked.add_argument("--calls", type=int, default=20_000)
    asked.add_argument("--batch", type=int, default=100)
    asked.add_argument("--repeat", type=int, default=5)
    asked.add_argument("--micros", type=float, default=100.0, help="the median a shape must stay under")
    args = parser.parse_args()
    load_average = os.getloadavg()[0]
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}, load {load_average:.1f}")
    ok = asyncio.run(deadlines(args)) if args.mode == "deadlines" else who_report(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
