"""The SQLite outbox: written with the change, keyed for idempotency, merged while pending, claimed in order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.incidents.book import Changes
from receiver.incidents.lifecycle import Signal
from receiver.notify.model import Intent, State, Target
from receiver.notify.planning import Notices
from receiver.store import Outcome
from receiver.store.sqlite import SQLiteStore

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
INC = "INC-20261130-0001"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "r.db")
    await s.open()
    yield s
    await s.close()


def intent(signal: Signal, target: str = "slack", event: str | None = None, *, mergeable: bool = False) -> Intent:
    return Intent(INC, signal, event or signal.value, Target.parse(target), "slack", "text", "receiver", T0, mergeable)


def notices(*intents: Intent, at: datetime = T0) -> Notices:
    return Notices(list(intents), [(INC, Target("slack"), "default SEV3")], {INC: T0 + timedelta(hours=4)}, at)


async def test_rows_are_written_once_per_key_and_targets_and_deadlines_with_them(store: SQLiteStore) -> None:
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED)))
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED)))  # replayed: adds nothing
    [row] = await store.notifications(incident=INC)
    assert (row.key, row.state, row.attempts, row.next_attempt_at) == (f"{INC}/opened/slack", State.PENDING, 0, T0)
    assert await store.notify_state(INC) == ([(INC, Target("slack"), "default SEV3")], {INC: T0 + timedelta(hours=4)})
    assert await store.outbox_backlog() == (1, T0)


async def test_a_refresh_merges_into_a_pending_row_and_is_written_once_nothing_is_pending(store: SQLiteStore) -> None:
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED)))
    for n in range(3):
        refresh = intent(Signal.ALERTS_CHANGED, event=f"refresh@{n}", mergeable=True)
        await store.record(_no_changes(), notices=notices(refresh))
    [row] = await store.notifications(incident=INC)
    assert row.merged == 3
    [claimed] = await store.claim_notifications(T0, 10)
    await store.finish_notification(Outcome(claimed, State.SENT, T0, "notified"))
    await store.record(_no_changes(), notices=notices(intent(Signal.ALERTS_CHANGED, event="refresh@9", mergeable=True)))
    assert [r.signal for r in await store.notifications(incident=INC)] == [Signal.ALERTS_CHANGED, Signal.OPENED]


async def test_a_row_is_not_claimed_while_an_earlier_one_of_its_target_is_open(store: SQLiteStore) -> None:
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED), intent(Signal.ACKNOWLEDGED)))
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED, "email")))
    first = await store.claim_notifications(T0, 10)
    assert [(d.signal, str(d.target)) for d in first] == [(Signal.OPENED, "slack"), (Signal.OPENED, "email")]
    assert await store.claim_notifications(T0, 10) == []  # the acknowledgement waits for the message it follows
    slack = first[0]
    await store.finish_notification(Outcome(slack, State.SENT, T0, "notified", thread={"ts": "1.1", "channel": "C1"}))
    [reply] = await store.claim_notifications(T0, 10)
    assert (reply.signal, reply.thread, reply.attempts) == (Signal.ACKNOWLEDGED, {"ts": "1.1", "channel": "C1"}, 1)


async def test_a_retry_waits_for_its_time_and_a_deferral_is_not_an_attempt(store: SQLiteStore) -> None:
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED)))
    [d] = await store.claim_notifications(T0, 1)
    later = T0 + timedelta(seconds=5)
    await store.finish_notification(
        Outcome(d, State.PENDING, T0, "", next_attempt_at=later, reason="server_error", error="HTTP 503")
    )
    assert await store.claim_notifications(T0 + timedelta(seconds=4), 1) == []
    assert await store.next_notification_due() == later
    [again] = await store.claim_notifications(later, 1)
    assert again.attempts == 2
    await store.defer_notifications([again.id], later + timedelta(seconds=1))
    [row] = await store.notifications(incident=INC)
    assert (row.state, row.attempts, row.last_error, row.reason) == (State.PENDING, 1, "HTTP 503", "server_error")


async def test_rows_left_sending_are_found_and_resumed_or_interrupted_with_a_timeline_line(store: SQLiteStore) -> None:
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED), intent(Signal.OPENED, "email")))
    await store.claim_notifications(T0, 10)
    slack, email = await store.stuck_notifications()
    await store.defer_notifications([slack.id], T0, resumed=True)
    await store.finish_notification(Outcome(email, State.INTERRUPTED, T0, "interrupted by a restart"))
    [resumed] = await store.claim_notifications(T0, 10)
    assert resumed.resumed and resumed.target == Target("slack")
    states = {str(r.target): r.state for r in await store.notifications(incident=INC)}
    assert states == {"slack": State.SENDING, "email": State.INTERRUPTED}
    assert await store.notifications(state=State.INTERRUPTED, limit=5) != []




async def test_services_joining_merge_into_a_pending_message_that_renders_the_whole_state(store: SQLiteStore) -> None:
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED)))
    joined = [
        Intent(INC, Signal.SERVICES_JOINED, f"j{n}", Target("slack"), "slack", f"s{n} joined", "receiver", T0, True)
        for n in range(3)
    ]
    await store.record(_no_changes(), notices=notices(*joined))
    [row] = await store.notifications(incident=INC)
    assert row.signal is Signal.OPENED and row.merged == 3
    [claimed] = await store.claim_notifications(T0, 1)
    assert claimed.text == "text; s0 joined; s1 joined; s2 joined"
    await store.finish_notification(Outcome(claimed, State.SENT, T0, "notified"))
    await store.record(_no_changes(), notices=notices(intent(Signal.ACKNOWLEDGED)))
    await store.record(_no_changes(), notices=notices(replace(joined[0], event="j9")))
    signals = [r.signal for r in await store.notifications(incident=INC)]
    assert signals == [Signal.SERVICES_JOINED, Signal.ACKNOWLEDGED, Signal.OPENED]  # not into an acknowledgement


async def test_ended_rows_are_pruned_and_pending_ones_kept(store: SQLiteStore) -> None:
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED), intent(Signal.OPENED, "email")))
    [claimed, _] = await store.claim_notifications(T0, 2)
    await store.finish_notification(Outcome(claimed, State.SENT, T0, "notified"))
    assert await store.prune_notifications(T0 + timedelta(seconds=1)) == 1
    [left] = await store.notifications(incident=INC)
    assert str(left.target) == "email"


def _no_changes() -> Changes:
    return Changes()


async def test_runs_blocked_while_a_message_about_blocked_runs_waits_are_told_in_it(store: SQLiteStore) -> None:
    await store.record(_no_changes(), notices=notices(intent(Signal.OPENED)))
    blocked = [
        Intent(INC, Signal.RUN_BLOCKED, f"b{n}", Target("slack"), "slack", f"run {n} blocked", "pb", T0, True)
        for n in range(3)
    ]
    await store.record(_no_changes(), notices=notices(*blocked))
    rows = await store.notifications(incident=INC)
    assert [(r.signal, r.merged) for r in rows] == [(Signal.RUN_BLOCKED, 2), (Signal.OPENED, 0)]
    [opened] = await store.claim_notifications(T0, 5)  # the blocked runs wait behind the incident's message
    await store.finish_notification(Outcome(opened, State.SENT, T0, "notified"))
    [told] = await store.claim_notifications(T0, 5)
    assert told.text == "run 0 blocked; run 1 blocked; run 2 blocked"
