"""The sender: real incidents (the processor, the book, the corpus's alerts) in a real SQLite store, sent
through a scripted channel (our own interface), on a clock the test moves: outcomes, retries, pacing, recovery.

The channels' own behaviour against their providers is tested in tests/test_channel_*.py.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from receiver.alerts.dedup import DedupPolicy
from receiver.engine.notifier import Notifier, RetryPolicy
from receiver.engine.processor import Processor
from receiver.engine.stories import story_of
from receiver.incidents.book import Book, IncidentPolicy
from receiver.incidents.lifecycle import Signal
from receiver.metrics import Tally
from receiver.notify.cadence import Cadence
from receiver.notify.channel import Io, Replay
from receiver.notify.content import Audience, Compose, Detail, Markup, Message
from receiver.notify.http import Http
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent, State, Target
from receiver.notify.planning import Channels, Planner
from receiver.notify.routing import Route
from receiver.notify.story import Happening, Story
from receiver.playbooks.actions import notify as notify_action
from receiver.playbooks.actions.base import Context
from receiver.playbooks.actions.base import Outcome as ActionOutcome
from receiver.store import IncidentQuery, Outcome, StoreError
from receiver.store.sqlite import SQLiteStore
from tests.corpus import alert, payload

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


class Now:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Scripted:
    """A channel whose answers the test scripts (Sent by default), recording what it was asked."""

    name: str
    results: list[Result | Exception] = field(default_factory=list)
    replays: Replay = Replay.SAFE
    interval: float = 0.0
    kind: str = "scripted"
    audience: Audience = "internal"
    asked: list[Delivery] = field(default_factory=list)
    stories: list[Message] = field(default_factory=list)

    def replay(self, delivery: Delivery) -> Replay:
        return self.replays

    def wants(self, signal: Signal) -> bool:
        return signal is not Signal.ALERTS_CHANGED

    def rate_key(self, delivery: Delivery) -> str:
        return "C1"

    def min_interval(self) -> float:
        return self.interval

    def preview(self, delivery: Delivery, compose: Compose) -> Mapping[str, Any]:
        return {"title": compose(Markup.PLAIN, Detail.FULL).title}

    async def send(self, delivery: Delivery, compose: Compose, io: Io) -> Result:
        self.asked.append(delivery)
        self.stories.append(compose(Markup.PLAIN, Detail.FULL))
        outcome = self.results.pop(0) if self.results else Sent(f"id-{len(self.asked)}", {"ts": f"{len(self.asked)}.0"})
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class TitleComposer:
    """Renders a story as its title and what happened (the templates are tested on their own)."""

    def compose(self, story: Story, audience: Audience, markup: Markup, detail: Detail, route: str) -> Message:
        return Message(
            f"[{story.severity}] {story.id}: {story.title}",
            story.severity,
            story.status,
            story.link,
            story.title,
            story.happening.text,
            f"{story.firing} firing",
            story.services,
        )


@dataclass
class World:
    store: SQLiteStore
    processor: Processor
    channel: Scripted
    clock: Now
    tallies: list[Tally]
    reports: list[int]
    """Each time the processor reported (what wakes the sender in the engine)."""

    def notifier(self, retry: RetryPolicy | None = None) -> Notifier:
        channels = {self.channel.name: self.channel}
        return Notifier(
            self.store,
            channels,
            TitleComposer(),
            Http(),
            self.clock,
            self.tallies.append,
            retry=retry,
            link=lambda i: f"https://receiver.example/api/v1/incidents/{i}",
        )

    async def fire(self, *pods: str, namespace: str = "shop") -> None:
        alerts = [alert("KubePodCrashLooping", pod=p, namespace=namespace) for p in pods]
        body = orjson.dumps(payload(alerts, starts_at=self.clock() - timedelta(minutes=15)))
        await self.store.accept(body, self.clock())
        await self.processor.drain()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    clock = Now()
    channel = Scripted("slack")
    route = Route("all", (), (Target("slack"),))
    planner = Planner([route], Channels({"slack": "scripted"}, lambda _, s: channel.wants(s)), Cadence())
    reports: list[int] = []
    processor = Processor(
        store,
        policy=DedupPolicy(),
        report=lambda cursor, _: reports.append(cursor),
        book=Book(IncidentPolicy()),
        clock=clock,
        planner=planner,
    )
    yield World(store, processor, channel, clock, [], reports)
    await store.close()


async def test_an_incident_that_opens_is_sent_once_with_its_outcome_recorded_and_counted(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    notifier = world.notifier()
    world.clock.at += timedelta(seconds=2)
    await notifier.drain()
    [asked] = world.channel.asked
    assert asked.signal is Signal.OPENED and asked.created_at == T0 and not asked.resumed
    [row] = await world.store.notifications()
    assert (row.state, row.attempts, row.provider_id, row.sent_at) == (State.SENT, 1, "id-1", world.clock.at)
    assert world.channel.stories[0].title.startswith(f"[SEV3] {row.incident}: KubePodCrashLooping")
    _, timeline = await world.store.incident(row.incident, 50) or (None, [])
    assert any(e.text == "notified opened to slack" for e in timeline)
    assert [t.sent for t in world.tallies] == [[("slack", 2.0)]]
    await notifier.drain()
    assert len(world.channel.asked) == 1  # nothing is sent twice


async def test_a_story_names_each_alert_and_its_service_though_the_store_keeps_neither(world: World) -> None:
    """Members read back from the store carry their labels only: the story works out each alert's name and
    service (messages listed every alert as ``-  (SEV3)``)."""
    await world.fire("web-7d4b9c6f5-x2x9z")
    [incident] = await world.store.incidents(IncidentQuery())
    found = await world.store.incident(incident.id, 50)
    assert found is not None
    story = story_of(*found, Happening(Signal.OPENED, "", "receiver", T0), "")
    assert [(a.name, a.service, a.severity) for a in story.alerts] == [("KubePodCrashLooping", "shop/web", "SEV3")]


async def test_a_rate_limit_sets_the_next_attempt_from_retry_after_never_a_sleep(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    world.channel.results = [Failed(Reason.RATE_LIMITED, "HTTP 429", retry_after=7)]
    notifier = world.notifier()
    await notifier.drain()
    [row] = await world.store.notifications()
    assert (row.state, row.next_attempt_at, row.reason) == (
        State.PENDING,
        T0 + timedelta(seconds=7),
        Reason.RATE_LIMITED,
    )
    world.clock.at += timedelta(seconds=6)
    await notifier.drain()
    assert len(world.channel.asked) == 1
    world.clock.at += timedelta(seconds=1)
    await notifier.drain()
    [row] = await world.store.notifications()
    assert (row.state, row.attempts, len(world.channel.asked)) == (State.SENT, 2, 2)
    assert [t.failed for t in world.tallies if t.failed] == [[("slack", "rate_limited")]]


async def test_server_errors_back_off_and_are_given_up_once_too_old(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    world.channel.results = [Failed(Reason.SERVER_ERROR, "HTTP 503")] * 3
    notifier = world.notifier(RetryPolicy(give_up_after=timedelta(seconds=12)))
    await notifier.drain()
    [row] = await world.store.notifications()
    assert row.next_attempt_at == T0 + timedelta(seconds=5)
    world.clock.at = T0 + timedelta(seconds=5)
    await notifier.drain()
    [row] = await world.store.notifications()
    assert row.next_attempt_at == world.clock.at + timedelta(seconds=10)  # doubled
    world.clock.at += timedelta(seconds=10)
    await notifier.drain()
    [row] = await world.store.notifications()
    assert (row.state, row.attempts, row.last_error) == (State.FAILED, 3, "HTTP 503")
    _, timeline = await world.store.incident(row.incident, 50) or (None, [])
    assert any("given up" in e.text for e in timeline)


async def test_a_permanent_failure_stops_at_once_and_is_shown(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    world.channel.results = [Failed(Reason.AUTH_ERROR, "invalid_auth", permanent=True)]
    await world.notifier().drain()
    [row] = await world.store.notifications(state=State.FAILED)
    assert (row.reason, row.last_error, row.next_attempt_at) == (Reason.AUTH_ERROR, "invalid_auth", None)
    _, timeline = await world.store.incident(row.incident, 50) or (None, [])
    assert "notification opened to slack failed (auth_error): invalid_auth" in [e.text for e in timeline]


async def test_a_channels_rate_defers_the_next_request_to_its_slot_without_an_attempt(world: World) -> None:
    world.channel.interval = 1.0
    await world.fire("web-7d4b9c6f5-x2x9z")
    await world.fire("api-5c9d8b7f6-q4w5e", namespace="billing")  # a second incident, on the same channel
    notifier = world.notifier()
    await notifier.drain()
    rows = await world.store.notifications()
    assert len(world.channel.asked) == 1
    waiting = [r for r in rows if r.state is State.PENDING]
    assert all(r.next_attempt_at == T0 + timedelta(seconds=1) and r.attempts == 0 for r in waiting)
    world.clock.at += timedelta(seconds=1)
    await notifier.drain()
    assert len(world.channel.asked) == 2


async def test_after_a_crash_safe_rows_are_sent_again_and_others_are_interrupted(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    await world.store.claim_notifications(T0, 10)  # the engine died while sending it
    world.channel.replays = Replay.RECONCILE
    await world.notifier().drain()
    [asked] = world.channel.asked
    assert asked.resumed and asked.attempts == 2  # the interrupted attempt counts
    await world.fire("api-5c9d8b7f6-q4w5e", "web-7d4b9c6f5-x2x9z")
    await world.processor.acknowledge((await world.store.notifications())[0].incident, "alice", "")
    await world.store.claim_notifications(T0, 10)
    world.channel.replays = Replay.NEVER
    await world.notifier().drain()
    interrupted = await world.store.notifications(state=State.INTERRUPTED)
    assert [r.signal for r in interrupted] == [Signal.SERVICES_JOINED]  # never sent again
    assert [d.signal for d in world.channel.asked[1:]] == [Signal.ACKNOWLEDGED]  # what waited behind it goes on
    _, timeline = await world.store.incident(interrupted[0].incident, 50) or (None, [])
    assert any("interrupted by a restart" in e.text for e in timeline)


async def test_a_channel_that_raises_is_a_failure_of_that_delivery_not_of_the_sender(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    world.channel.results = [RuntimeError("bug")]
    notifier = world.notifier()
    await notifier.drain()
    [row] = await world.store.notifications()
    assert (row.state, row.reason) == (State.PENDING, Reason.OTHER) and "bug" in row.last_error
    world.clock.at += timedelta(seconds=5)
    await notifier.drain()
    assert (await world.store.notifications())[0].state is State.SENT


async def test_a_person_acknowledging_and_posting_an_update_is_told_in_order(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    [row] = await world.store.notifications()
    await world.processor.acknowledge(row.incident, "alice", "on it")
    await world.processor.update(row.incident, "alice", "rolled back to 1.4.2")
    await world.notifier().drain()
    assert [(d.signal, d.actor) for d in world.channel.asked] == [
        (Signal.OPENED, "receiver"),
        (Signal.ACKNOWLEDGED, "alice"),
        (Signal.STATUS_UPDATE, "alice"),
    ]
    assert world.channel.asked[2].text == "rolled back to 1.4.2"
    assert collections.Counter(r.state for r in await world.store.notifications()) == {State.SENT: 3}


async def test_a_playbooks_notify_step_is_a_row_for_its_channel_and_a_line_in_the_timeline(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    [opened] = await world.store.notifications()
    await world.processor.notify(opened.incident, "kube-pod-crash-looping", "default", "deleting the pod")
    await world.processor.notify(opened.incident, "kube-pod-crash-looping", "slack:C999", "to another channel")
    await world.notifier().drain()
    steps = {(d.signal, str(d.target), d.text, d.actor) for d in world.channel.asked[1:]}  # two targets: any order
    assert steps == {
        (Signal.STEP, "slack", "deleting the pod", "playbook kube-pod-crash-looping"),
        (Signal.STEP, "slack:C999", "to another channel", "playbook kube-pod-crash-looping"),
    }
    _, timeline = await world.store.incident(opened.incident, 50) or (None, [])
    assert "to default: deleting the pod" in [e.text for e in timeline]


class Held(Scripted):
    """Answers only once the test releases it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def send(self, delivery: Delivery, compose: Compose, io: Io) -> Result:
        self.arrived.set()
        await self.release.wait()
        return await super().send(delivery, compose, io)


async def in_flight(world: World, acknowledged: bool = False) -> tuple[Held, Notifier]:
    """An incident's first message being sent (its channel holds the answer), and the sender sending it."""
    held = Held("slack")
    world.channel = held
    await world.fire("web-7d4b9c6f5-x2x9z")
    if acknowledged:
        [row] = await world.store.notifications()
        await world.processor.acknowledge(row.incident, "alice", "")
    notifier = world.notifier()
    assert await notifier.step() == 1
    await asyncio.wait_for(held.arrived.wait(), 10)
    return held, notifier


async def test_a_stopping_engine_lets_a_delivery_in_flight_end_and_claims_nothing_more(world: World) -> None:
    held, notifier = await in_flight(world)
    quiescing = asyncio.create_task(notifier.quiesce(10))
    await world.fire("api-5c9d8b7f6-q4w5e")  # more news while stopping
    held.release.set()
    assert await quiescing == 0
    assert await notifier.step() == 0  # nothing more is claimed
    states = [r.state for r in await world.store.notifications()]
    assert states == [State.PENDING, State.SENT]  # the news waits for the next engine, unclaimed


async def test_a_delivery_that_does_not_end_in_the_grace_is_left_to_the_next_start(world: World) -> None:
    held, notifier = await in_flight(world)
    assert await notifier.quiesce(0.01) == 1
    [row] = await world.store.notifications()
    assert row.state is State.SENDING  # recovered (re-sent, reconciled or interrupted) at the next start
    held.release.set()
    await notifier.drain()  # what was still running ends before the store closes


async def test_a_change_that_writes_notifications_wakes_the_sender_at_once(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    [row] = await world.store.notifications()
    before = len(world.reports)
    await world.processor.note(row.incident, "alice", "looking at the rollout")
    await world.processor.update(row.incident, "alice", "rolled back")
    assert len(world.reports) == before + 2  # the engine wires its report to the sender's wake


async def test_a_row_held_back_by_one_in_flight_does_not_make_the_sender_look_again_at_once(world: World) -> None:
    held, notifier = await in_flight(world, acknowledged=True)
    assert await world.store.next_notification_due() is None  # the acknowledgement waits for the post: no due time
    held.release.set()
    await notifier.drain()
    assert [d.signal for d in held.asked] == [Signal.OPENED, Signal.ACKNOWLEDGED]


class FailingOnce:
    """The store, failing the first outcome it is asked to write (the disk was full for a moment)."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.failed = False

    async def finish_notification(self, outcome: Outcome) -> None:
        if not self.failed:
            self.failed = True
            raise StoreError("database or disk is full")
        await self.inner.finish_notification(outcome)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_row_whose_outcome_could_not_be_written_is_swept_without_a_restart(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    world.channel.replays = Replay.NEVER  # as an email: it may have left, so it is not sent again
    store = FailingOnce(world.store)
    channels = {"slack": world.channel}
    notifier = Notifier(cast(Any, store), channels, TitleComposer(), Http(), world.clock, world.tallies.append)
    await notifier.drain()  # the next look after the failed write sweeps it
    [row] = await world.store.notifications()
    assert row.state is State.INTERRUPTED and len(world.channel.asked) == 1


async def test_a_retry_after_of_years_is_asked_again_within_the_give_up_deadline(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    world.channel.results = [Failed(Reason.RATE_LIMITED, "HTTP 429", retry_after=1e12)]
    await world.notifier().drain()
    [row] = await world.store.notifications()
    assert row.state is State.PENDING and row.next_attempt_at == T0 + timedelta(hours=2)


@pytest.mark.parametrize(
    ("replay", "state", "resumed"),
    [(Replay.NEVER, State.INTERRUPTED, False), (Replay.RECONCILE, State.SENT, True), (Replay.SAFE, State.SENT, False)],
)
async def test_an_attempt_with_no_answer_is_reconciled_or_interrupted_never_blindly_resent(
    world: World, replay: Replay, state: State, resumed: bool
) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    world.channel.replays = replay
    world.channel.results = [Failed(Reason.TIMEOUT, "no answer", maybe_sent=True)]
    notifier = world.notifier()
    await notifier.drain()
    world.clock.at += timedelta(seconds=5)
    await notifier.drain()
    [row] = await world.store.notifications()
    assert row.state is state
    asked = world.channel.asked
    assert len(asked) == (1 if replay is Replay.NEVER else 2)
    if len(asked) == 2:
        assert asked[1].resumed is resumed or replay is Replay.SAFE


async def test_rows_that_ended_are_forgotten_after_the_retention(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    await world.notifier().drain()
    world.clock.at += timedelta(days=31)
    await world.fire("api-5c9d8b7f6-q4w5e")
    await world.notifier().drain()  # a new sender prunes at its first look
    assert [r.signal for r in await world.store.notifications()] == [Signal.SERVICES_JOINED]


async def test_a_notify_step_that_writes_nothing_says_so_instead_of_succeeding(world: World) -> None:
    await world.fire("web-7d4b9c6f5-x2x9z")
    [row] = await world.store.notifications()
    assert await world.processor.notify(row.incident, "pb", "nowhere", "hello") == 0
    assert await world.processor.notify(row.incident, "pb", "default", "hello") == 1

    async def still_firing() -> bool:
        return True

    async def tell(channel: str, message: str) -> int:
        return await world.processor.notify(row.incident, "pb", channel, message)

    context = Context(cast(Any, None), still_firing, 1.0, tell=tell)
    skipped = await notify_action.execute(context, {"channel": "nowhere", "message": "hello"})
    assert skipped.outcome is ActionOutcome.SKIPPED
    assert skipped.reason == "nothing sent to nowhere: not a channel taking it"
    done = await notify_action.execute(context, {"channel": "default", "message": "hello"})
    assert done.outcome is ActionOutcome.SUCCEEDED
