"""Escalation on a virtual clock: real incidents (the corpus's alerts, the book, the processor) in a real SQLite
store, policies resolved against real schedules; the pages are outbox rows, the steps timeline lines.

Every step fires at its deadline and only then; an acknowledgement at any point stops the ladder (and the
pages still waiting for a later contact rule); resolve ends it, a reopen starts it again, a worse severity
moves it to a stricter policy; a restart or a failed write fires the next step exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from receiver.alerts.dedup import DedupPolicy
from receiver.alerts.matchers import parse
from receiver.engine.escalating import escalation_loop, wait_seconds
from receiver.engine.processor import Processor
from receiver.incidents.book import Book, Changes, IncidentPolicy
from receiver.incidents.lifecycle import EventKind, IncidentStatus, Signal
from receiver.metrics import Tally
from receiver.notify.cadence import Cadence
from receiver.notify.escalation import Escalator, Ladders, PolicyRoute, span
from receiver.notify.model import NotificationRecord, State, Target
from receiver.notify.planning import Channels, Notices, Planner
from receiver.notify.routing import Route
from receiver.oncall.policies import Contact, Person, Policy, Ref, RefKind, Roster, Step
from receiver.oncall.schedules import WEEKLY, Layer, Rotation, Schedule
from receiver.playbooks.runs import RunIntent
from receiver.store import Batch, IncidentQuery, StoreError
from receiver.store.sqlite import SQLiteStore
from tests.corpus import alert, payload

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
KINDS = {"slack": "slack", "email": "email", "pagerduty": "pagerduty"}
PEOPLE = {
    "alice": Person(
        "alice",
        {"slack": "U0ALICE", "email": "alice@example.com"},
        (Contact("slack"), Contact("email", timedelta(minutes=5))),
    ),
    "bob": Person("bob", {"slack": "U0BOB"}),
    "carol": Person("carol", {"email": "carol@example.com"}),
}


def weekly(*people: str) -> Schedule:
    """A weekly rotation handing off Mondays 09:00 Berlin time, from 2026-11-23 (``people[0]`` has 30 Nov)."""
    rotation = Rotation(people, WEEKLY, datetime(2026, 11, 23, 9, 0))
    return Schedule(people[0], BERLIN, (Layer((rotation,)),))


SCHEDULES = {"primary": weekly("alice", "bob"), "secondary": weekly("bob", "alice")}
DEFAULT = Policy(
    "default",
    (
        Step((Ref(RefKind.SCHEDULE, "primary"),)),
        Step((Ref(RefKind.SCHEDULE, "secondary"),)),
        Step((Ref(RefKind.PERSON, "carol"),), timedelta(minutes=10)),
    ),
    repeat=1,
)
URGENT = Policy("urgent", (Step((Ref(RefKind.SCHEDULE, "primary"), Ref(RefKind.PERSON, "carol"))),))
LADDERS = Ladders(
    {"default": DEFAULT, "urgent": URGENT},
    (PolicyRoute("worse", (parse('severity=~"SEV1|SEV2"'),), "urgent"),),
    Roster(PEOPLE, SCHEDULES),
    {"slack": "slack", "email": "email"},
    KINDS,
)
SCHEDULE = [  # (minutes after the incident opened, the line that step writes)
    (0, "default step 1/3, round 1/2: paged alice (schedule:primary) by slack, email after 5m; next step in 5m"),
    (5, "no acknowledgement in 5m: default step 2/3, round 1/2: paged bob (schedule:secondary) by slack; next step"),
    (10, "no acknowledgement in 5m: default step 3/3, round 1/2: paged carol by email; next step in 10m"),
    (20, "no acknowledgement in 10m: default step 1/3, round 2/2: paged alice (schedule:primary) by slack, email"),
    (25, "no acknowledgement in 5m: default step 2/3, round 2/2: paged bob (schedule:secondary) by slack; next"),
    (30, "no acknowledgement in 5m: default step 3/3, round 2/2: paged carol by email; last step: the escalation"),
    (40, "no acknowledgement in 10m: escalation default ended: nobody acknowledged after 2 rounds"),
]


class Now:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


@dataclass
class World:
    path: Path
    store: SQLiteStore
    processor: Processor
    clock: Now
    tallies: list[Tally]

    async def open(self, *pods: str, namespace: str = "shop") -> str:
        alerts = [alert("KubePodCrashLooping", pod=p, namespace=namespace) for p in pods]
        await self.post(alerts)
        [incident] = await self.store.incidents(IncidentQuery())
        return incident.id

    async def post(self, alerts: list[object], status: str = "firing") -> None:
        body = orjson.dumps(payload(alerts, status=status, starts_at=self.clock() - timedelta(minutes=15)))
        await self.store.accept(body, self.clock())
        await self.processor.drain()

    async def at(self, minutes: float) -> int:
        """Move the clock to ``minutes`` after T0 and fire what is due; how many steps fired."""
        self.clock.at = T0 + timedelta(minutes=minutes)
        return await self.processor.escalate(self.clock.at)

    async def lines(self, incident: str) -> list[str]:
        _, timeline = await self.store.incident(incident, 500) or (None, [])
        return [e.text for e in timeline if e.kind is EventKind.ESCALATION]

    async def pages(self, incident: str) -> list[NotificationRecord]:
        rows = await self.store.notifications(incident=incident, limit=500)
        return sorted((r for r in rows if r.signal is Signal.PAGED), key=lambda r: r.id)


def processor(
    store: SQLiteStore, clock: Now, tallies: list[Tally], ladders: Ladders = LADDERS, batch_size: int = 512
) -> Processor:
    routes = [Route("all", (), (Target("pagerduty"),))]
    planner = Planner(routes, Channels(KINDS, lambda _, s: s is not Signal.ALERTS_CHANGED), Cadence())
    return Processor(
        store,
        policy=DedupPolicy(),
        report=lambda _, tally: tallies.append(tally),
        book=Book(IncidentPolicy()),
        clock=clock,
        planner=planner,
        escalator=Escalator(ladders),
        batch_size=batch_size,
    )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    clock, tallies = Now(), []
    world = World(tmp_path / "r.db", store, processor(store, clock, tallies), clock, tallies)
    yield world
    await world.store.close()  # the one open now (a restart test reopens it)


async def test_a_policy_is_driven_through_every_step_and_round_each_at_its_deadline(world: World) -> None:
    incident = await world.open("web-7d4b9c6f5-x2x9z")
    assert world.processor.next_escalation() == T0  # started with the change that opened it, due at once
    for minutes, line in SCHEDULE:
        assert await world.at(minutes - 1 / 60) == 0  # a second early: nothing
        await world.at(minutes)
        lines = await world.lines(incident)
        assert lines[-1].startswith(line), lines[-1]
        assert await world.at(minutes) == 0  # never twice
    assert len(await world.lines(incident)) == len(SCHEDULE)
    assert world.processor.next_escalation() is None
    pages = await world.pages(incident)
    assert [str(p.target) for p in pages] == 2 * [
        "slack:U0ALICE",
        "email:alice@example.com",
        "slack:U0BOB",
        "email:carol@example.com",
    ]
    assert pages[1].next_attempt_at == T0 + timedelta(minutes=5)  # alice's email rule: 5 minutes later
    steps = [s for t in world.tallies for s in t.steps]
    assert steps == [("default", 1), ("default", 2), ("default", 3)] * 2


@pytest.mark.parametrize("acked_after", range(len(SCHEDULE)))
async def test_an_acknowledgement_at_any_point_stops_the_ladder(world: World, acked_after: int) -> None:
    incident = await world.open("web-7d4b9c6f5-x2x9z")
    for minutes, _ in SCHEDULE[: acked_after + 1]:
        await world.at(minutes)
    before = await world.lines(incident)
    world.clock.at += timedelta(seconds=30)
    await world.processor.acknowledge(incident, "bob", "on it")
    assert world.processor.next_escalation() is None
    for minutes, _ in SCHEDULE:
        assert await world.at(minutes + 60) == 0
    assert await world.lines(incident) == before
    pages = await world.pages(incident)
    assert all(p.state is not State.PENDING or p.next_attempt_at is None for p in pages)
    waiting = [p for p in pages if p.target == Target("email", "alice@example.com") and p.state is State.SKIPPED]
    if acked_after in (0, 3):  # alice's email was still 5 minutes away: not sent
        assert waiting
    rows = await world.store.notifications(incident=incident, limit=500)
    told = {str(r.target) for r in rows if r.signal is Signal.ACKNOWLEDGED}
    paged = {str(p.target) for p in pages}
    assert told == paged | {"pagerduty"}  # everyone paged hears it was acknowledged, where they were paged
    acks = [a for t in world.tallies for a in t.acknowledgements]
    assert [(a[0], a[2], a[3]) for a in acks] == [("SEV3", "api", "bob")]


async def test_resolve_ends_it_and_a_reopen_starts_it_again_from_the_first_step(world: World) -> None:
    incident = await world.open("web-7d4b9c6f5-x2x9z")
    await world.at(0)
    await world.at(5)
    await world.processor.resolve(incident, "alice", "rolled back")
    assert await world.at(10) == 0
    await world.processor._transition(incident, IncidentStatus.TRIGGERED, "alice", "it is back")  # a reopen
    assert world.processor.next_escalation() == world.clock.at
    await world.at(10)
    lines = await world.lines(incident)
    assert lines[-1].startswith("default step 1/3, round 1/2: paged alice")


async def test_a_worse_severity_moves_it_to_the_stricter_policy(world: World) -> None:
    incident = await world.open("web-7d4b9c6f5-x2x9z")
    await world.at(0)
    world.clock.at = T0 + timedelta(minutes=2)
    filling = alert("KubePersistentVolumeFillingUp", variant="critical", namespace="shop")
    await world.post([filling])
    [found] = await world.store.incidents(IncidentQuery())
    assert found.id == incident and str(found.severity) in ("SEV1", "SEV2")
    await world.at(2)
    lines = await world.lines(incident)
    assert lines[-1].startswith("urgent step 1/1: paged alice (schedule:primary) by slack, email after 5m; paged carol")
    pages = await world.pages(incident)
    assert next(p.state for p in pages if str(p.target) == "email:alice@example.com") is State.SKIPPED  # the old


async def test_a_restart_during_a_wait_fires_the_next_step_once_on_time(world: World) -> None:
    incident = await world.open("web-7d4b9c6f5-x2x9z")
    await world.at(0)
    await world.store.close()
    store = SQLiteStore(world.path)
    await store.open()
    try:
        restarted = processor(store, world.clock, world.tallies)
        restarted.cursor = await store.cursor()
        await restarted.drain()  # loads the book, the planner and the escalations
        assert restarted.next_escalation() == T0 + timedelta(minutes=5)
        world.clock.at = T0 + timedelta(minutes=5)
        assert await restarted.escalate(world.clock.at) == 1
        assert await restarted.escalate(world.clock.at) == 0
        _, timeline = await store.incident(incident, 500) or (None, [])
        lines = [e.text for e in timeline if e.kind is EventKind.ESCALATION]
        assert len(lines) == 2 and "paged bob" in lines[1]
    finally:
        await store.close()
        world.store = await _reopened(world.path)


async def _reopened(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    return store


class FailingOnce(SQLiteStore):
    """The store, whose next incident write fails (a full disk, a lost connection)."""

    fail = False

    async def record(self, *args: object, **kwargs: object) -> None:
        if self.fail:
            self.fail = False
            raise StoreError("disk I/O error")
        await super().record(*args, **kwargs)  # type: ignore[arg-type]


async def test_a_failed_write_fires_nothing_and_the_step_fires_once_after(tmp_path: Path) -> None:
    store = FailingOnce(tmp_path / "r.db")
    await store.open()
    try:
        clock, tallies = Now(), []
        world = World(tmp_path / "r.db", store, processor(store, clock, tallies), clock, tallies)
        incident = await world.open("web-7d4b9c6f5-x2x9z")
        store.fail = True
        with pytest.raises(StoreError):
            await world.at(0)
        assert await world.lines(incident) == [] and await world.pages(incident) == []
        assert await world.at(0) == 1  # the book and the escalations are read again: the step is still due
        assert len(await world.lines(incident)) == 1 and len(await world.pages(incident)) == 2
    finally:
        await store.close()


async def test_a_schedule_with_nobody_on_call_is_said_and_counted(world: World) -> None:
    empty = Schedule("nights", BERLIN, (Layer((Rotation(("bob",), WEEKLY, datetime(2030, 1, 7, 9, 0)),)),))
    ladders = Ladders(
        {"default": Policy("default", (Step((Ref(RefKind.SCHEDULE, "nights"),)),))},
        (),
        Roster(PEOPLE, {"nights": empty}),
        {"slack": "slack"},
        KINDS,
    )
    world.processor = processor(world.store, world.clock, world.tallies, ladders)
    incident = await world.open("web-7d4b9c6f5-x2x9z")
    await world.at(0)
    assert (await world.lines(incident))[-1].startswith("default step 1/1: nobody on call in schedule:nights")
    assert [p for t in world.tallies for p in t.nobody] == ["default"]
    assert await world.pages(incident) == []


async def test_the_loop_waits_until_the_next_deadline_and_no_longer(world: World) -> None:
    assert wait_seconds(world.processor, world.clock, 30.0) == 30.0  # nothing escalates
    await world.open("web-7d4b9c6f5-x2x9z")
    assert wait_seconds(world.processor, world.clock, 30.0) == 0.0  # due at once
    await world.at(0)
    world.clock.at = T0 + timedelta(minutes=4, seconds=58)
    assert wait_seconds(world.processor, world.clock, 30.0) == pytest.approx(2.0)


class Ticking(Now):
    """A clock a millisecond later at each reading, as the real one is while work goes on."""

    def __call__(self) -> datetime:
        self.at += timedelta(milliseconds=1)
        return self.at


class Ordered(SQLiteStore):
    """The store, noting in order the incidents each processing batch opens and the steps each change fires."""

    order: list[str]
    fired: asyncio.Event
    enough: int

    async def process(self, batch: Batch) -> None:
        await super().process(batch)
        self.order += ["opened"] * len(batch.changes.opened)

    async def record(self, changes: Changes, runs: Sequence[RunIntent] = (), notices: Notices | None = None) -> None:
        await super().record(changes, runs, notices)
        self.order += ["fired" for _, event, _ in changes.events if event.kind is EventKind.ESCALATION]
        if self.order.count("fired") >= self.enough:
            self.fired.set()


async def test_steps_a_batch_made_due_fire_before_the_next_batch_is_processed(tmp_path: Path) -> None:
    """With a backlog in the inbox (10,000 incidents opening at once: bench.escalation), the processor lets the
    woken escalation loop take its turn between two full batches: a first step waits for its own batch's
    commit, not for the next batch's too (the loop read the clock before it queued for the lock)."""
    store = Ordered(tmp_path / "r.db")
    store.order, store.fired, store.enough = [], asyncio.Event(), 6
    await store.open()
    clock = Ticking()
    for namespace in ("shop", "cart", "pay", "web", "db", "mq"):
        fired = alert("KubePodCrashLooping", pod="web-7d4b9c6f5-x2x9z", namespace=namespace)
        await store.accept(orjson.dumps(payload([fired], starts_at=T0 - timedelta(minutes=15))), T0)
    consumer = processor(store, clock, [], batch_size=1)
    tasks = [asyncio.create_task(consumer.run()), asyncio.create_task(escalation_loop(consumer, clock))]
    try:
        async with asyncio.timeout(10):
            await store.fired.wait()
        assert store.order == ["opened", "fired"] * 6
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45, "45s"), (300, "5m"), (5400, "1h30m"), (90061, "1d1h1m1s")]
)
def test_waits_are_said_as_people_write_them(seconds: int, text: str) -> None:
    assert span(timedelta(seconds=seconds)) == text


async def test_a_person_reached_through_a_channel_of_their_own_is_paged_there(world: World) -> None:
    """``{contact: channel:NAME}``: a PagerDuty routing key whose service pages them (an SMS gateway alike)."""
    dave = Person("dave", {}, (Contact("channel:pagerduty"), Contact("channel:sms", timedelta(minutes=2))))
    ladders = Ladders(
        {"default": Policy("default", (Step((Ref(RefKind.PERSON, "dave"),)),))},
        (),
        Roster({"dave": dave}, {}),
        {},
        KINDS,
    )
    world.processor = processor(world.store, world.clock, world.tallies, ladders)
    incident = await world.open("web-7d4b9c6f5-x2x9z")
    await world.at(0)
    [line] = await world.lines(incident)
    assert line.startswith("default step 1/1: paged dave by channel:pagerduty, no channel:sms channel;")
    [page] = await world.pages(incident)
    assert (page.target, page.state) == (Target("pagerduty"), State.PENDING)
