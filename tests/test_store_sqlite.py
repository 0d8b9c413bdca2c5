"""The SQLite store: atomic accept, persistence across reopen, expiry, locking."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from receiver.alertmanager import Alert, Notification, decode
from receiver.dedup import AlertState, Decision, DedupPolicy, Outcome, Status, decide
from receiver.store import StoreError
from receiver.store.sqlite import SQLiteStore
from tests.conftest import T0, fixture_bytes

POLICY = DedupPolicy()
FIRING = decode(fixture_bytes("02-firing-crashlooping-3-pods.json"))
MIXED = decode(fixture_bytes("03-mixed-one-resolved.json"))


def at(minutes: float = 0) -> functools.partial[Decision]:
    return functools.partial(decide, now=T0 + timedelta(minutes=minutes), policy=POLICY)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "r.db")
    await s.open()
    yield s
    await s.close()


async def test_accept_records_alerts_events_and_notification(store: SQLiteStore) -> None:
    [accepted] = await store.accept([FIRING], at())
    assert accepted.notification_id is not None
    assert [d.outcome for d in accepted.decisions] == [Outcome.FIRED] * 3
    alerts = await store.list_alerts()
    assert {a.state.fingerprint for a in alerts} == {a.fingerprint for a in FIRING.alerts}
    assert {a.labels["pod"] for a in alerts} == {"api-7d9f-a", "api-7d9f-b", "api-7d9f-c"}
    events = await store.events()
    assert [(e.kind, e.notification_id) for e in events] == [("fired", accepted.notification_id)] * 3


async def test_duplicates_in_one_batch_and_across_batches_are_stored_once(store: SQLiteStore) -> None:
    results = await store.accept([FIRING, FIRING], at())
    assert results[1].notification_id is None
    assert all(d.outcome is Outcome.DUPLICATE for d in results[1].decisions)
    [again] = await store.accept([FIRING], at(5))
    assert again.notification_id is None
    assert len(await store.events()) == 3
    [alert] = [a.state for a in await store.list_alerts() if a.state.fingerprint == FIRING.alerts[0].fingerprint]
    assert alert.last_seen == T0 + timedelta(minutes=5)
    assert alert.last_changed == T0


async def test_state_survives_reopen(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "r.db")
    await first.open()
    await first.accept([FIRING], at())
    await first.accept([MIXED], at(1))
    before = await first.list_alerts()
    await first.close()
    second = SQLiteStore(tmp_path / "r.db")
    await second.open()
    try:
        assert await second.list_alerts() == before
        [dup] = await second.accept([MIXED], at(2))
        assert {d.outcome for d in dup.decisions} == {Outcome.DUPLICATE}
        counts = await second.count_alerts()
        assert (counts[Status.FIRING], counts[Status.RESOLVED]) == (2, 1)
    finally:
        await second.close()


async def test_a_failing_batch_writes_nothing(store: SQLiteStore) -> None:
    calls = 0

    def explode_on_fourth(prev: AlertState | None, alert: Alert) -> Decision:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("boom")
        return decide(prev, alert, T0, POLICY)

    with pytest.raises(RuntimeError):
        await store.accept([FIRING, MIXED], explode_on_fourth)
    assert await store.list_alerts() == []
    assert await store.events() == []


async def test_expire_marks_only_silent_firing_alerts(store: SQLiteStore) -> None:
    a, b, c = FIRING.alerts
    await store.accept([FIRING], at())
    await store.accept([replace(FIRING, alerts=(b,))], at(30))  # a repeat keeps b alive
    await store.accept([replace(MIXED, alerts=MIXED.alerts[:1])], at(31))  # a resolves
    expired = await store.expire(cutoff=T0 + timedelta(minutes=10), now=T0 + timedelta(minutes=40))
    assert expired == [c.fingerprint]
    statuses = {s.state.fingerprint: s.state.status for s in await store.list_alerts()}
    assert statuses == {a.fingerprint: Status.RESOLVED, b.fingerprint: Status.FIRING, c.fingerprint: Status.EXPIRED}
    assert [(e.kind, e.fingerprint) for e in await store.events()][-1] == ("expired", c.fingerprint)
    assert await store.expire(cutoff=T0 + timedelta(minutes=10), now=T0 + timedelta(minutes=41)) == []


async def test_list_filters_by_status(store: SQLiteStore) -> None:
    await store.accept([FIRING], at())
    await store.accept([MIXED], at(1))
    resolved = await store.list_alerts(frozenset({Status.RESOLVED}))
    assert [a.state.status for a in resolved] == [Status.RESOLVED]


async def test_events_page_in_order(store: SQLiteStore) -> None:
    await store.accept([FIRING], at())
    await store.accept([MIXED], at(1))
    first = await store.events(limit=2)
    rest = await store.events(after=first[-1].seq)
    assert [e.seq for e in first + rest] == sorted(e.seq for e in first + rest)
    assert len(first + rest) == 4


async def test_locked_database_raises_store_error_and_keeps_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db", busy_timeout=timedelta(milliseconds=100))
    await store.open()
    blocker = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="locked"):
            await store.accept([FIRING], at())
        with pytest.raises(StoreError):
            await store.ping()
        blocker.execute("ROLLBACK")
        assert await store.list_alerts() == []
        await store.ping()
    finally:
        blocker.close()
        await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "r.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        await SQLiteStore(tmp_path / "r.db").open()


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.accept([FIRING], at())


async def test_empty_notification_is_accepted_without_news(store: SQLiteStore) -> None:
    empty = Notification("r", "firing", (), "{}:{}", {}, {}, {}, "", 0)
    [result] = await store.accept([empty], at())
    assert result.decisions == () and result.notification_id is None
