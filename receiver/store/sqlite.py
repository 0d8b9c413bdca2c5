"""The embedded SQLite store: WAL mode, one writer thread, one reader thread.

SQLite allows one writer at a time, so every write runs on one dedicated
thread that owns the write connection; a whole batch of notifications is read,
decided and written there in a single transaction (one fsync for many
requests). Reads use their own connection on their own thread, so a large
listing never stalls ingestion (WAL lets readers and the writer overlap).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from receiver.alertmanager import Alert, Notification
from receiver.dedup import AlertState, Decision, Outcome, Status
from receiver.store import Accepted, AlertEvent, Decide, StoredAlert, StoreError

T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE alerts (
    fingerprint   TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    labels        TEXT NOT NULL,
    annotations   TEXT NOT NULL,
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER,
    generator_url TEXT NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    last_changed  INTEGER NOT NULL,
    flips         TEXT NOT NULL
);
CREATE INDEX alerts_by_status ON alerts (status, last_seen);
CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY,
    received_at      INTEGER NOT NULL,
    receiver         TEXT NOT NULL,
    group_key        TEXT NOT NULL,
    group_labels     TEXT NOT NULL,
    external_url     TEXT NOT NULL,
    truncated_alerts INTEGER NOT NULL,
    alert_count      INTEGER NOT NULL
);
CREATE TABLE alert_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER,
    at              INTEGER NOT NULL,
    notification_id INTEGER REFERENCES notifications (id)
);
CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
"""
_STATE_COLUMNS = "fingerprint, status, starts_at, ends_at, first_seen, last_seen, last_changed, flips"
_ALERT_COLUMNS = f"{_STATE_COLUMNS}, labels, annotations, generator_url"


class SQLiteStore:
    """A ``Store`` in one SQLite file; ``await open()`` before use, ``close()`` after."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["full", "normal"] = "full",
        busy_timeout: timedelta = timedelta(seconds=5),
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout / timedelta(milliseconds=1))
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open (creating and migrating when needed) the database."""
        try:
            self._writer = await self._on(self._writer_thread, self._connect_writer)
            self._reader = await self._on(self._reader_thread, self._connect)
        except BaseException:
            await self.close()
            raise

    async def accept(self, batch: Sequence[Notification], decide: Decide) -> list[Accepted]:
        return await self._write(lambda db: _accept(db, batch, decide))

    async def list_alerts(self, statuses: frozenset[Status] | None = None) -> list[StoredAlert]:
        return await self._read(lambda db: _list_alerts(db, statuses))

    async def count_alerts(self) -> Mapping[Status, int]:
        rows = await self._read(lambda db: db.execute("SELECT status, count(*) FROM alerts GROUP BY status").fetchall())
        counts = {status: 0 for status in Status}
        counts.update({Status(status): n for status, n in rows})
        return counts

    async def expire(self, cutoff: datetime, now: datetime) -> list[str]:
        return await self._write(lambda db: _expire(db, _micros(cutoff), _micros(now)))

    async def events(self, after: int = 0, limit: int = 1000) -> list[AlertEvent]:
        return await self._read(lambda db: _events(db, after, limit))

    async def ping(self) -> None:
        now = _micros(datetime.now(UTC))
        await self._write(lambda db: db.execute("INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?)", (now,)))

    async def close(self) -> None:
        for executor, conn in ((self._writer_thread, self._writer), (self._reader_thread, self._reader)):
            if conn is not None:
                await self._on(executor, conn.close)
            executor.shutdown(wait=True)
        self._writer = self._reader = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        return db

    def _connect_writer(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise StoreError(f"{self._path}: cannot switch the database to WAL mode")
            db.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            _migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._writer
        if db is None:
            raise StoreError("the store is closed")
        return await self._on(self._writer_thread, lambda: _transaction(db, work))

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._reader
        if db is None:
            raise StoreError("the store is closed")
        return await self._on(self._reader_thread, lambda: work(db))

    async def _on(self, executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)
        except sqlite3.Error as err:
            raise StoreError(f"{self._path}: {err}") from err


def _transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def _migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version != 0:
        raise StoreError(f"database schema version {version} is newer than this receiver ({SCHEMA_VERSION})")
    db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")


def _accept(db: sqlite3.Connection, batch: Sequence[Notification], decide: Decide) -> list[Accepted]:
    known = _load_states(db, {a.fingerprint for n in batch for a in n.alerts})
    changed: dict[str, tuple[AlertState, Alert]] = {}
    seen: dict[str, AlertState] = {}
    results = []
    for notification in batch:
        decisions = []
        for alert in notification.alerts:
            decision = decide(known.get(alert.fingerprint), alert)
            known[alert.fingerprint] = decision.state
            if decision.outcome is Outcome.DUPLICATE:
                seen[alert.fingerprint] = decision.state
            elif decision.outcome is not Outcome.STALE:
                changed[alert.fingerprint] = (decision.state, alert)
            decisions.append(decision)
        results.append(_record(db, notification, tuple(decisions)))
    db.executemany(
        f"INSERT OR REPLACE INTO alerts ({_ALERT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (_alert_row(state, alert) for state, alert in changed.values()),
    )
    db.executemany(
        "UPDATE alerts SET last_seen = ? WHERE fingerprint = ?",
        ((_micros(state.last_seen), fp) for fp, state in seen.items() if fp not in changed),
    )
    return results


def _record(db: sqlite3.Connection, notification: Notification, decisions: tuple[Decision, ...]) -> Accepted:
    news = [d for d in decisions if d.is_news]
    if not news:
        return Accepted(decisions, None)
    at = _micros(news[0].state.last_seen)
    cursor = db.execute(
        "INSERT INTO notifications (received_at, receiver, group_key, group_labels, external_url,"
        " truncated_alerts, alert_count) VALUES (?,?,?,?,?,?,?)",
        (
            at,
            notification.receiver,
            notification.group_key,
            _json(notification.group_labels),
            notification.external_url,
            notification.truncated_alerts,
            len(notification.alerts),
        ),
    )
    nid = cursor.lastrowid
    db.executemany(
        "INSERT INTO alert_events (fingerprint, kind, starts_at, ends_at, at, notification_id) VALUES (?,?,?,?,?,?)",
        (
            (d.state.fingerprint, d.outcome.value, _micros(d.state.starts_at), _opt_micros(d.state.ends_at), at, nid)
            for d in news
        ),
    )
    return Accepted(decisions, nid)


def _expire(db: sqlite3.Connection, cutoff: int, now: int) -> list[str]:
    rows = db.execute(
        "SELECT fingerprint, starts_at, ends_at FROM alerts WHERE status = 'firing' AND last_seen < ?", (cutoff,)
    ).fetchall()
    db.executemany(
        "UPDATE alerts SET status = 'expired', last_changed = ? WHERE fingerprint = ?", ((now, fp) for fp, _, _ in rows)
    )
    db.executemany(
        "INSERT INTO alert_events (fingerprint, kind, starts_at, ends_at, at) VALUES (?, 'expired', ?, ?, ?)",
        ((fp, starts, ends, now) for fp, starts, ends in rows),
    )
    return [fp for fp, _, _ in rows]


def _load_states(db: sqlite3.Connection, fingerprints: set[str]) -> dict[str, AlertState]:
    states: dict[str, AlertState] = {}
    fps = list(fingerprints)
    for i in range(0, len(fps), 500):
        chunk = fps[i : i + 500]
        query = f"SELECT {_STATE_COLUMNS} FROM alerts WHERE fingerprint IN ({','.join('?' * len(chunk))})"
        states.update((row[0], _state(row)) for row in db.execute(query, chunk))
    return states


def _list_alerts(db: sqlite3.Connection, statuses: frozenset[Status] | None) -> list[StoredAlert]:
    query = f"SELECT {_ALERT_COLUMNS} FROM alerts"
    args: list[str] = []
    if statuses is not None:
        args = sorted(statuses)
        query += f" WHERE status IN ({','.join('?' * len(args))})"
    rows = db.execute(query + " ORDER BY last_changed DESC, fingerprint", args)
    return [StoredAlert(_state(row[:8]), json.loads(row[8]), json.loads(row[9]), row[10]) for row in rows]


def _events(db: sqlite3.Connection, after: int, limit: int) -> list[AlertEvent]:
    rows = db.execute(
        "SELECT seq, fingerprint, kind, starts_at, ends_at, at, notification_id FROM alert_events"
        " WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, limit),
    )
    return [
        AlertEvent(seq, fp, kind, _time(starts), _opt_time(ends), _time(at), nid)
        for seq, fp, kind, starts, ends, at, nid in rows
    ]


def _alert_row(s: AlertState, alert: Alert) -> tuple[Any, ...]:
    return (
        s.fingerprint,
        s.status.value,
        _micros(s.starts_at),
        _opt_micros(s.ends_at),
        _micros(s.first_seen),
        _micros(s.last_seen),
        _micros(s.last_changed),
        json.dumps([_micros(f) for f in s.flips]),
        _json(alert.labels),
        _json(alert.annotations),
        alert.generator_url,
    )


def _state(row: Sequence[Any]) -> AlertState:
    fp, status, starts, ends, first, last, changed, flips = row
    return AlertState(
        fingerprint=fp,
        status=Status(status),
        starts_at=_time(starts),
        ends_at=_opt_time(ends),
        first_seen=_time(first),
        last_seen=_time(last),
        last_changed=_time(changed),
        flips=tuple(_time(f) for f in json.loads(flips)) if flips != "[]" else (),
    )


def _json(mapping: Mapping[str, str]) -> str:
    return json.dumps(mapping, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // _MICRO


def _opt_micros(t: datetime | None) -> int | None:
    return None if t is None else _micros(t)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _opt_time(micros: int | None) -> datetime | None:
    return None if micros is None else _time(micros)
