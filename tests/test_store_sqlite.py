"""The SQLite store: durable inbox, atomic processing, cursor, expiry, locking."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from receiver.alerts.dedup import Outcome, Status
from receiver.alerts.wire import Notification, decode
from receiver.store import InboxEntry, Processed, StoreError
from receiver.store import sqlite as sqlite_store
from receiver.store import sqlite_tables as tables
from receiver.store.sqlite import SQLiteStore, inbox_path
from tests.conftest import T0, fixture_bytes
from tests.payloads import alert, body
from tests.processing import DECIDE, apply, expire

FIRING_BODY = fixture_bytes("02-firing-crashlooping-3-pods.json")
FIRING = decode(FIRING_BODY)
MIXED = decode(fixture_bytes("03-mixed-one-resolved.json"))


def at(minutes: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes)


def entry(seq: int, notification: Notification | None, minutes: float = 0) -> tuple[InboxEntry, Notification | None]:
    return InboxEntry(seq, at(minutes), b"{}"), notification


async def test_accept_appends_bodies_in_order(store: SQLiteStore) -> None:
    seqs = [await store.accept(b'{"n": %d}' % i, at(i)) for i in range(3)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    entries = await store.inbox(after=0, limit=10)
    assert [(e.seq, e.body, e.received_at) for e in entries] == [(seqs[i], b'{"n": %d}' % i, at(i)) for i in range(3)]
    assert await store.backlog() == 3
    assert await store.cursor() == 0


async def test_apply_records_alerts_events_and_notification_and_moves_the_cursor(store: SQLiteStore) -> None:
    seq = await store.accept(FIRING_BODY, at())
    [processed] = await apply(store, [entry(seq, FIRING)], DECIDE)
    assert processed.notification_id == seq
    assert [d.outcome for d in processed.decisions] == [Outcome.FIRED] * 3
    alerts = await store.list_alerts()
    assert {a.state.fingerprint for a in alerts} == {a.fingerprint for a in FIRING.alerts}
    assert {a.labels["pod"] for a in alerts} == {"api-7d9f-a", "api-7d9f-b", "api-7d9f-c"}
    assert [(e.kind, e.notification_id) for e in await store.events()] == [("fired", seq)] * 3
    assert (await store.cursor(), await store.backlog()) == (seq, 0)


async def test_duplicates_in_one_batch_and_across_batches_are_stored_once(store: SQLiteStore) -> None:
    results = await apply(store, [entry(1, FIRING), entry(2, FIRING)], DECIDE)
    assert results[1].notification_id is None
    assert all(d.outcome is Outcome.DUPLICATE for d in results[1].decisions)
    [again] = await apply(store, [entry(3, FIRING, minutes=5)], DECIDE)
    assert again.notification_id is None
    assert len(await store.events()) == 3
    [alert] = [a.state for a in await store.list_alerts() if a.state.fingerprint == FIRING.alerts[0].fingerprint]
    assert alert.last_seen == at(5)
    assert alert.last_changed == at(0)


async def test_dedup_decides_with_the_receipt_time_not_the_processing_time(store: SQLiteStore) -> None:
    await apply(store, [entry(1, FIRING, minutes=-30)], DECIDE)
    [alert, *_] = await store.list_alerts()
    assert alert.state.first_seen == at(-30)


async def test_a_processed_entry_is_never_applied_twice(store: SQLiteStore) -> None:
    await apply(store, [entry(1, FIRING), entry(2, MIXED)], DECIDE)
    with pytest.raises(StoreError, match="processed already"):
        await apply(store, [entry(2, MIXED)], DECIDE)
    assert len(await store.events()) == 4


async def test_undecodable_entry_is_skipped_but_passed(store: SQLiteStore) -> None:
    [skipped, ok] = await apply(store, [entry(1, None), entry(2, FIRING)], DECIDE)
    assert skipped == Processed(1, None)
    assert ok.notification_id == 2
    assert await store.cursor() == 2


async def test_state_survives_reopen(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "r.db")
    await first.open()
    await apply(first, [entry(1, FIRING), entry(2, MIXED, minutes=1)], DECIDE)
    before = await first.list_alerts()
    await first.close()
    second = SQLiteStore(tmp_path / "r.db")
    await second.open()
    try:
        assert await second.list_alerts() == before
        assert await second.cursor() == 2
        [dup] = await apply(second, [entry(3, MIXED, minutes=2)], DECIDE)
        assert {d.outcome for d in dup.decisions} == {Outcome.DUPLICATE}
        counts = await second.count_alerts()
        assert (counts[Status.FIRING], counts[Status.RESOLVED]) == (2, 1)
    finally:
        await second.close()


def _fail_inside_the_transaction(path: Path, table: str, when: str) -> None:
    """A trigger that makes the database refuse one row of a batch: the failure comes mid-transaction."""
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TRIGGER boom BEFORE INSERT ON {table} WHEN {when} BEGIN SELECT RAISE(ABORT, 'boom'); END")


def _heal(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER boom")


async def test_a_failing_batch_writes_nothing_and_keeps_the_cursor(store: SQLiteStore, tmp_path: Path) -> None:
    _fail_inside_the_transaction(tmp_path / "r.db", "alert_events", "(SELECT count(*) FROM alert_events) >= 3")
    with pytest.raises(RuntimeError):  # the fourth piece of news fails, after three were written
        await apply(store, [entry(1, FIRING), entry(2, MIXED)], DECIDE)
    assert await store.list_alerts() == []
    assert await store.events() == []
    assert await store.cursor() == 0
    _heal(tmp_path / "r.db")
    [again] = await apply(store, [entry(1, FIRING)], DECIDE)  # as if the rolled-back batch never happened
    assert [d.outcome for d in again.decisions] == [Outcome.FIRED] * 3


async def test_expire_marks_only_silent_firing_alerts(store: SQLiteStore) -> None:
    a, b, c = FIRING.alerts
    await apply(
        store,
        [
            entry(1, FIRING),
            entry(2, replace(FIRING, alerts=(b,)), minutes=30),  # a repeat keeps b alive
            entry(3, replace(MIXED, alerts=MIXED.alerts[:1]), minutes=31),  # a resolves
        ],
        DECIDE,
    )
    expired = await expire(store, cutoff=at(10), now=at(40))
    assert expired == [c.fingerprint]
    statuses = {s.state.fingerprint: s.state.status for s in await store.list_alerts()}
    assert statuses == {a.fingerprint: Status.RESOLVED, b.fingerprint: Status.FIRING, c.fingerprint: Status.EXPIRED}
    assert [(e.kind, e.fingerprint) for e in await store.events()][-1] == ("expired", c.fingerprint)
    assert await expire(store, cutoff=at(10), now=at(41)) == []
    [revived] = await apply(store, [entry(4, replace(FIRING, alerts=(c,)), minutes=42)], DECIDE)
    assert revived.decisions[0].outcome is Outcome.FIRED  # Alertmanager repeating c revives it


async def test_list_filters_by_status(store: SQLiteStore) -> None:
    await apply(store, [entry(1, FIRING), entry(2, MIXED, minutes=1)], DECIDE)
    resolved = await store.list_alerts(frozenset({Status.RESOLVED}))
    assert [a.state.status for a in resolved] == [Status.RESOLVED]


async def test_events_page_in_order(store: SQLiteStore) -> None:
    await apply(store, [entry(1, FIRING), entry(2, MIXED, minutes=1)], DECIDE)
    first = await store.events(limit=2)
    rest = await store.events(after=first[-1].seq)
    assert [e.seq for e in first + rest] == sorted(e.seq for e in first + rest)
    assert len(first + rest) == 4


async def test_prune_forgets_only_processed_old_entries(store: SQLiteStore) -> None:
    old = await store.accept(b"old", at(0))
    processed_new = await store.accept(b"new", at(10))
    waiting = await store.accept(b"waiting", at(0))
    await apply(store, [entry(old, None), entry(processed_new, None)], DECIDE)
    assert await store.prune_inbox(before=at(5)) == 1
    assert [e.body for e in await store.inbox(after=0, limit=10)] == [b"new", b"waiting"]
    assert waiting > processed_new


async def test_locked_database_raises_store_error_and_keeps_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db", busy_timeout=timedelta(milliseconds=100))
    await store.open()
    blocker = sqlite3.connect(inbox_path(tmp_path / "r.db"), isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="locked"):
            await store.accept(FIRING_BODY, at())
        with pytest.raises(StoreError):
            await store.ping()
        blocker.execute("ROLLBACK")
        assert await store.inbox(after=0, limit=10) == []
        await store.ping()
    finally:
        blocker.close()
        await store.close()


async def test_other_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "r.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        await SQLiteStore(tmp_path / "r.db").open()


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.accept(FIRING_BODY, at())


async def test_empty_notification_is_processed_without_news(store: SQLiteStore) -> None:
    empty = Notification("r", "firing", (), "{}:{}", {}, {}, {}, "", 0)
    [result] = await apply(store, [entry(1, empty)], DECIDE)
    assert result.decisions == () and result.notification_id is None


async def test_write_ahead_logs_stay_bounded_under_continuous_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "INBOX_LOG_LIMIT_FRAMES", 256)  # 1 MiB: the writer's own checkpoint kicks in
    store = SQLiteStore(tmp_path / "r.db", role="web")
    await store.open()
    try:
        payload = b'{"version": "4", "alerts": [], "pad": "' + b"x" * 3000 + b'"}'
        for _ in range(40):  # 40 rounds of 64 concurrent appends: about 8 MiB of bodies
            await asyncio.gather(*(store.accept(payload, T0) for _ in range(64)))
        wal = inbox_path(tmp_path / "r.db").with_name("r-inbox.db-wal")
        assert wal.stat().st_size < 4 * 1024 * 1024, f"the inbox log grew to {wal.stat().st_size} bytes"
        assert len(await store.inbox(after=0, limit=10_000)) == 40 * 64
    finally:
        await store.close()


def _rows_per_fingerprint(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT fingerprint, count(*) FROM alerts GROUP BY fingerprint"))


async def test_a_rolled_back_batch_gives_no_alert_a_second_row(store: SQLiteStore, tmp_path: Path) -> None:
    _fail_inside_the_transaction(tmp_path / "r.db", "alerts", f"NEW.fingerprint = '{MIXED.alerts[-1].fingerprint}'")
    with pytest.raises(RuntimeError):  # the other alerts' rows were inserted, then rolled back
        await apply(store, [entry(1, FIRING), entry(2, MIXED)], DECIDE)
    _heal(tmp_path / "r.db")
    await apply(store, [entry(1, FIRING)], DECIDE)
    await apply(store, [entry(2, MIXED, 1)], DECIDE)
    counts = _rows_per_fingerprint(tmp_path / "r.db")
    assert set(counts.values()) == {1}
    assert set(counts) == {a.fingerprint for a in (*FIRING.alerts, *MIXED.alerts)}


async def test_an_alert_written_by_another_store_is_found_not_inserted_again(tmp_path: Path) -> None:
    first, second = SQLiteStore(tmp_path / "r.db"), SQLiteStore(tmp_path / "r.db")
    await first.open()
    await second.open()
    try:
        await apply(first, [entry(1, FIRING)], DECIDE)  # the first store knows its rows now
        other = decode(body(alert("OnlyTheSecondWroteIt")))
        await apply(second, [entry(2, other, 1)], DECIDE)  # the second adds a row the first has not seen
        [processed] = await apply(first, [entry(3, other, 2)], DECIDE)
        assert {d.outcome for d in processed.decisions} <= {Outcome.DUPLICATE}
        assert set(_rows_per_fingerprint(tmp_path / "r.db").values()) == {1}
    finally:
        await first.close()
        await second.close()


async def test_a_version_1_state_database_is_upgraded_and_keeps_its_alerts(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with sqlite3.connect(path) as db:  # the layout of schema version 1: alerts keyed by fingerprint
        db.executescript(
            tables.STATE_SCHEMA.replace(tables.INCIDENT_SCHEMA, "")
            .replace(tables.RUN_SCHEMA, "")
            .replace(tables.RESET_SCHEMA, "")
            .replace(tables.EVIDENCE_SCHEMA, "")
            .replace(tables.WATCHDOG_SCHEMA, "")
            .replace(tables.OUTBOX_SCHEMA, "")
            .replace(tables.ESCALATION_SCHEMA, "")  # none of them in v1
            .replace("id            INTEGER PRIMARY KEY,  -- in order of first sight: a new alert is appended\n", "")
            .replace("fingerprint   TEXT NOT NULL,", "fingerprint   TEXT PRIMARY KEY NOT NULL,")
            + "PRAGMA user_version = 1;"
        )
        db.execute(
            "INSERT INTO alerts VALUES ('00000000000000aa', 'firing', 1, NULL, 1, 1, 1, '[]', ?, '{}', '')",
            ('{"a":"b"}',),
        )
    store = SQLiteStore(path)
    await store.open()
    try:
        [old] = await store.list_alerts()
        assert (old.state.fingerprint, old.labels) == ("00000000000000aa", {"a": "b"})
        await apply(store, [entry(1, FIRING)], DECIDE)
        assert len(await store.list_alerts()) == 1 + len(FIRING.alerts)
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == tables.STATE_SCHEMA_VERSION
        assert db.execute("SELECT id FROM alerts WHERE fingerprint = '00000000000000aa'").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM incidents").fetchone() == (0,)  # 2 -> 3 made the incident tables
        assert db.execute("SELECT count(*) FROM evidence").fetchone() == (0,)  # 5 -> 6 made the evidence table
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)  # 7 -> 8 made the outbox
        assert db.execute("SELECT count(*) FROM watchdog").fetchone() == (0,)  # 6 -> 7 made the watchdog's row


async def test_resolved_and_expired_alerts_are_forgotten_after_the_retention(
    store: SQLiteStore, tmp_path: Path
) -> None:
    await apply(store, [entry(1, FIRING)], DECIDE)  # three firing pods
    await apply(store, [entry(2, MIXED, 10)], DECIDE)  # one of them resolves at minute 10
    [resolved] = [a.state.fingerprint for a in await store.list_alerts(frozenset({Status.RESOLVED}))]
    assert await store.prune_alerts(at(10)) == 0  # changed at minute 10: not before it
    assert await store.prune_alerts(at(11)) == 1
    remaining = await store.list_alerts()
    assert resolved not in {a.state.fingerprint for a in remaining}
    assert {a.state.status for a in remaining} == {Status.FIRING}  # firing alerts are never forgotten
    # it fires again later: a new row, not an update of the deleted one
    again = replace(FIRING, alerts=tuple(replace(a, starts_at=at(20)) for a in FIRING.alerts))
    [processed] = await apply(store, [entry(3, again, 20)], DECIDE)
    outcomes = {d.state.fingerprint: d.outcome for d in processed.decisions}
    assert outcomes[resolved] is Outcome.FIRED
    assert _rows_per_fingerprint(tmp_path / "r.db")[resolved] == 1


async def test_an_alert_whose_row_was_deleted_elsewhere_gets_a_new_row_not_a_lost_update(
    store: SQLiteStore, tmp_path: Path
) -> None:
    await apply(store, [entry(1, FIRING)], DECIDE)  # the store knows the rows' ids now
    gone = FIRING.alerts[0].fingerprint
    with sqlite3.connect(tmp_path / "r.db") as db:  # not the max id: the store cannot tell from it
        db.execute("DELETE FROM alerts WHERE fingerprint = ?", (gone,))
    later = replace(FIRING, alerts=tuple(replace(a, starts_at=at(30)) for a in FIRING.alerts))
    await apply(store, [entry(2, later, 30)], DECIDE)
    assert _rows_per_fingerprint(tmp_path / "r.db") == {a.fingerprint: 1 for a in FIRING.alerts}
