"""The coverage check: gaps per schedule (tables), gaps and shifts tiling the window (property), the engine's loop
(logged at warning, reported, daily on its own sleep, started again and counted when it fails), its counts
crossing the engine link (the engine process checks the schedules it is given), and the metrics.

Instants are fixed or come from the test's clock: nothing depends on today's date.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from receiver.clock import FixedClock
from receiver.config import Settings
from receiver.engine import builder
from receiver.engine.coverage import checked, coverage_loop
from receiver.engine.process import EngineProcess
from receiver.kube import Kube
from receiver.metrics import Metrics, Tally
from receiver.oncall.coverage import Coverage, EmptyStep, Gap, Kind, check, gaps
from receiver.oncall.policies import Policy, Ref, RefKind, Step
from receiver.oncall.schedules import DAILY, HOURLY, WEEKLY, Layer, Override, Rotation, Schedule, shifts
from receiver.store.sqlite import SQLiteStore
from tests.conftest import T0
from tests.e2e.harness import eventually
from tests.test_oncall_calendar_api import ONCALL

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _utc(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def _rotation(*people: str, start: datetime = datetime(2026, 12, 7, 9, 0)) -> Rotation:
    return Rotation(people, DAILY, start)


def _schedule(name: str, *layers: tuple[Rotation, ...], overrides: tuple[Override, ...] = ()) -> Schedule:
    return Schedule(name, BERLIN, tuple(Layer(rotations) for rotations in layers), overrides)


PRIMARY = _schedule("primary", (_rotation("alice", "bob"),))
"""From 2026-12-07 09:00 Berlin (08:00 UTC) on: nobody before."""
ONLY_OVERRIDE = _schedule(
    "holiday",
    (_rotation("alice", start=datetime(2027, 6, 1, 9, 0)),),
    overrides=(Override("carol", _utc(3, 12), _utc(4, 12)),),
)

GAPS = [
    (PRIMARY, _utc(1), _utc(10), [Gap("primary", _utc(1), _utc(7, 8))]),
    (PRIMARY, _utc(8), _utc(10), []),
    (PRIMARY, _utc(7, 8), _utc(7, 9), []),
    (PRIMARY, _utc(1), _utc(2), [Gap("primary", _utc(1), _utc(2))]),
    (ONLY_OVERRIDE, _utc(1), _utc(6), [Gap("holiday", _utc(1), _utc(3, 12)), Gap("holiday", _utc(4, 12), _utc(6))]),
    (ONLY_OVERRIDE, _utc(3, 12), _utc(4, 12), []),
    (ONLY_OVERRIDE, _utc(4), _utc(4, 13), [Gap("holiday", _utc(4, 12), _utc(4, 13))]),
]


@pytest.mark.parametrize(("schedule", "start", "end", "expected"), GAPS)
def test_gaps(schedule: Schedule, start: datetime, end: datetime, expected: list[Gap]) -> None:
    assert gaps(schedule, start, end) == expected


def test_an_override_into_a_rotation_that_starts_later_leaves_no_gap_at_the_handoff() -> None:
    bridged = _schedule("primary", (_rotation("alice", "bob"),), overrides=(Override("carol", _utc(1), _utc(7, 8)),))
    assert gaps(bridged, _utc(1), _utc(20)) == []


def test_the_report_has_every_schedule_with_zero_when_covered_and_describes_each_gap() -> None:
    report = check({"primary": PRIMARY, "holiday": ONLY_OVERRIDE}, _utc(6), weeks=1)
    assert report.start == _utc(6) and report.end == _utc(13)
    assert report.schedules == ("holiday", "primary")
    assert report.gaps == [
        Gap("holiday", _utc(6), _utc(13)),
        Gap("primary", _utc(6), _utc(7, 8)),
    ]
    assert report.gap_seconds() == {"holiday": 7 * 86400.0, "primary": 32 * 3600.0}
    assert [f.kind for f in report.findings] == [Kind.GAP, Kind.GAP]
    assert [f"{f.where}: {f.describe()}" for f in report.findings] == [
        "oncall.schedules.holiday: nobody is on call from 2026-12-06T00:00:00Z to 2026-12-13T00:00:00Z (7d)",
        "oncall.schedules.primary: nobody is on call from 2026-12-06T00:00:00Z to 2026-12-07T08:00:00Z (1d 8h)",
    ]
    assert check({"primary": PRIMARY}, _utc(8), weeks=4) == Coverage(
        _utc(8), _utc(8) + timedelta(weeks=4), ("primary",), ()
    )
    assert check({}, _utc(8)).gap_seconds() == {}


@pytest.mark.parametrize(
    ("span", "words"),
    [(timedelta(seconds=30), "30s"), (timedelta(minutes=5), "5m"), (timedelta(days=2, minutes=1), "2d 1m")],
)
def test_gap_lengths_read_as_people_write_them(span: timedelta, words: str) -> None:
    assert Gap("s", _utc(1), _utc(1) + span).describe().endswith(f"({words})")


_ZONES = st.sampled_from([BERLIN, NEW_YORK, ZoneInfo("Australia/Sydney"), ZoneInfo("UTC")])
_PATTERNS = st.sampled_from([HOURLY, DAILY, WEEKLY, (timedelta(days=4), timedelta(days=3)), (timedelta(hours=7),)])
_BASE = datetime(2026, 1, 1)


@st.composite
def _schedules(draw: st.DrawFn) -> Schedule:
    layers = []
    for _ in range(draw(st.integers(0, 3))):
        people = tuple(draw(st.lists(st.sampled_from(["alice", "bob", "carol"]), min_size=1, max_size=3)))
        start = _BASE + timedelta(hours=draw(st.integers(0, 24 * 400)))
        layers.append(Layer((Rotation(people, draw(_PATTERNS), start),)))
    overrides = []
    for _ in range(draw(st.integers(0, 3))):
        begin = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 60 * 24 * 400)))
        overrides.append(Override("dave", begin, begin + timedelta(minutes=draw(st.integers(1, 60 * 24 * 20)))))
    return Schedule("s", draw(_ZONES), tuple(layers), tuple(overrides))


@settings(max_examples=150, deadline=None)
@given(
    _schedules(),
    st.integers(0, 60 * 24 * 400).map(lambda m: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m)),
    st.integers(1, 60 * 24 * 21).map(lambda m: timedelta(minutes=m)),
)
def test_gaps_and_shifts_tile_the_window_exactly(schedule: Schedule, start: datetime, length: timedelta) -> None:
    end = start + length
    spans = sorted(
        [(g.start, g.end, None) for g in gaps(schedule, start, end)]
        + [(s.start, s.end, s.person) for s in shifts(schedule, start, end)]
    )
    assert spans[0][0] == start and spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in pairwise(spans))  # no hole, no overlap
    assert all(s < e for s, e, _ in spans)
    assert all(not (a[2] is None and b[2] is None) for a, b in pairwise(spans))  # gaps are whole


# The engine's loop and the metrics.


def test_the_check_logs_each_gap_at_warning_and_reports_totals(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="receiver.engine.coverage"):
        tally = checked({"primary": PRIMARY}, _utc(6), weeks=1)
    assert tally.coverage_gaps == {"primary": 32 * 3600.0}
    assert tally.coverage_checked == _utc(6).timestamp()
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == (
        "on-call coverage gap in oncall.schedules.primary:"
        " nobody is on call from 2026-12-06T00:00:00Z to 2026-12-07T08:00:00Z (1d 8h)"
    )
    assert record.__dict__["schedule"] == "primary"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="receiver.engine.coverage"):
        assert checked({"primary": PRIMARY}, _utc(8), weeks=1).coverage_gaps == {"primary": 0.0}
    assert [r.levelno for r in caplog.records] == [logging.INFO]


async def test_the_loop_checks_at_once_then_after_each_day_on_the_clock() -> None:
    now = [_utc(6)]
    reports: list[Tally] = []
    slept: list[float] = []
    third = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += timedelta(seconds=seconds)
        if len(reports) == 3:
            third.set()
            await asyncio.Event().wait()  # until cancelled

    loop = asyncio.create_task(coverage_loop({"primary": PRIMARY}, 1, lambda: now[0], reports.append, sleep))
    await asyncio.wait_for(third.wait(), 10)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    assert slept == [86400.0] * 3
    assert [t.coverage_checked for t in reports] == [_utc(d).timestamp() for d in (6, 7, 8)]
    assert [t.coverage_gaps for t in reports] == [{"primary": 32 * 3600.0}, {"primary": 8 * 3600.0}, {"primary": 0}]


def test_coverage_counts_cross_the_engine_link_and_set_the_gauges() -> None:
    sent = Tally(coverage_gaps={"primary": 3600.0, "secondary": 0.0}, coverage_checked=1.7e9, coverage_restarts=2)
    back = Tally.from_json(sent.to_json())
    assert back == sent
    assert Tally.from_json(Tally().to_json()).coverage_gaps is None
    metrics = Metrics(CollectorRegistry())
    metrics.add(back)
    metrics.add(Tally(coverage_gaps={"primary": 60.0}, coverage_checked=1.8e9))
    metrics.add(Tally(sent=[("slack", 1.0)]))  # no check in this step: the last result stays
    value = metrics.registry.get_sample_value
    assert value("receiver_oncall_coverage_gap_seconds", {"schedule": "primary"}) == 60.0
    assert value("receiver_oncall_coverage_gap_seconds", {"schedule": "secondary"}) is None  # gone since
    assert value("receiver_oncall_coverage_checked_timestamp_seconds") == 1.8e9
    assert value("receiver_oncall_coverage_restarts_total") == 2


def test_who_is_on_call_now_is_an_info_metric_that_moves_at_the_handoff() -> None:
    metrics = Metrics(CollectorRegistry())
    value = metrics.registry.get_sample_value
    metrics.on_call_now({"primary": "alice", "secondary": None})
    assert value("receiver_oncall_on_call", {"schedule": "primary", "person": "alice"}) == 1
    assert value("receiver_oncall_nobody", {"schedule": "primary"}) == 0
    assert value("receiver_oncall_nobody", {"schedule": "secondary"}) == 1
    metrics.on_call_now({"primary": "bob", "secondary": "carol"})
    assert value("receiver_oncall_on_call", {"schedule": "primary", "person": "alice"}) is None
    assert value("receiver_oncall_on_call", {"schedule": "primary", "person": "bob"}) == 1
    assert value("receiver_oncall_on_call", {"schedule": "secondary", "person": "carol"}) == 1
    assert value("receiver_oncall_nobody", {"schedule": "secondary"}) == 0


async def test_the_engine_process_checks_the_schedules_it_is_given_and_reports_across_the_link(
    make_settings: Callable[..., Settings],
) -> None:
    """The settings frame carries ``oncall`` to the engine process; its check reaches the web's metrics."""
    settings = make_settings(engine={"nice": 0}, oncall=ONCALL)
    store = SQLiteStore(settings.database_path, role="web")
    await store.open()
    registry = CollectorRegistry()
    engine = EngineProcess(settings, Metrics(registry), clock=FixedClock(T0))
    try:
        await engine.start(cursor=0)

        async def checked_once() -> bool:
            return registry.get_sample_value("receiver_oncall_coverage_checked_timestamp_seconds") == T0.timestamp()

        await eventually(checked_once, "the engine's coverage check to report", 20)
        gap = registry.get_sample_value("receiver_oncall_coverage_gap_seconds", {"schedule": "primary"})
        assert gap == (datetime(2026, 11, 23, 8, tzinfo=UTC) - T0).total_seconds()
    finally:
        await engine.close(grace_seconds=10)
        await store.close()


async def test_a_failing_check_is_logged_counted_and_started_again(
    make_settings: Callable[..., Settings], store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(oncall=ONCALL)
    reports: list[Tally] = []
    calls = []

    async def fails_once(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("an unexpected bug")
        await coverage_loop(*args, **kwargs)

    monkeypatch.setattr(builder, "coverage_loop", fails_once)
    engine = builder.build(
        settings, store, clock=FixedClock(T0), kube=Kube(None, dry_run=True), report=lambda _, t: reports.append(t)
    )
    engine.start()
    try:

        async def checked_after_restart() -> bool:
            return any(t.coverage_gaps is not None for t in reports)

        await eventually(checked_after_restart, "the check, after it was started again", 20)
        assert engine.failed is not None and not engine.failed.done()
    finally:
        await engine.stop()
    assert sum(t.coverage_restarts for t in reports) == 1
    assert [t.coverage_checked for t in reports if t.coverage_gaps is not None] == [T0.timestamp()]


def _policy(*targets: str) -> Policy:
    return Policy("default", (Step((Ref(RefKind.PERSON, "alice"),)), Step(tuple(Ref.parse(t) for t in targets))))


@pytest.mark.parametrize(
    ("targets", "reachable", "empty"),
    [
        # primary starts on 7 Dec 09:00 Berlin (08:00 UTC): before that, a step paging only it pages nobody
        (("schedule:primary",), {"alice"}, [(_utc(1), _utc(7, 8))]),
        (("schedule:primary", "person:bob"), {"alice", "bob"}, []),  # bob can be reached: never empty
        (("schedule:primary", "person:bob"), {"alice"}, [(_utc(1), _utc(7, 8))]),  # bob has no contact point
        (("schedule:primary", "channel:pagerduty"), {"alice"}, []),
    ],
)
def test_an_escalation_step_that_pages_nobody_is_a_finding_with_its_key(
    targets: tuple[str, ...], reachable: set[str], empty: list[tuple[datetime, datetime]]
) -> None:
    coverage = check({"primary": PRIMARY}, _utc(1), 4, {"default": _policy(*targets)}, reachable)
    found = [f for f in coverage.findings if isinstance(f, EmptyStep)]
    assert [(f.start, f.end) for f in found] == empty
    assert all(f.where == "oncall.policies.default.steps.1" and f.kind is Kind.EMPTY_STEP for f in found)
    if found:
        assert found[0].describe().startswith("this escalation step pages nobody from 2026-12-01T00:00:00Z to")


def test_a_step_over_two_schedules_is_empty_only_where_both_have_nobody() -> None:
    nights = _schedule("nights", (_rotation("bob", start=datetime(2026, 12, 3, 9, 0)),))
    policies = {"default": _policy("schedule:primary", "schedule:nights")}
    coverage = check({"primary": PRIMARY, "nights": nights}, _utc(1), 4, policies, {"alice"})
    [empty] = [f for f in coverage.findings if isinstance(f, EmptyStep)]
    assert (empty.start, empty.end) == (_utc(1), _utc(3, 8))  # nights starts first: 3 Dec 09:00 Berlin
