"""The SQLite store's tables: schema, migration, and the SQL of each operation.

Functions here run on a connection handed to them, inside a transaction the
caller opened; they never start threads or touch the event loop. Times are
stored as integer microseconds since the epoch, label sets as sorted JSON.

Inbox appends (a webhook request waits on each) are one statement whose rows
come as one JSON array: one call into SQLite, one release of the interpreter
lock. Processing writes use ``executemany``: with ``json_each`` the SQLite of
Python 3.11 (before 3.45, no JSONB) parses each row's JSON again for every
column it extracts, and a processing batch cost 118 us per notification
against 88 us with ``executemany``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson

from receiver.alerts.dedup import AlertState, Decision, Outcome, Status
from receiver.alerts.wire import Alert
from receiver.store import AlertEvent, Batch, Expiry, InboxEntry, Processed, StoreError
from receiver.store.sqlite_escalations import SCHEMA as ESCALATION_SCHEMA
from receiver.store.sqlite_evidence import SCHEMA as EVIDENCE_SCHEMA
from receiver.store.sqlite_incidents import SCHEMA as INCIDENT_SCHEMA
from receiver.store.sqlite_outbox import SCHEMA as OUTBOX_SCHEMA
from receiver.store.sqlite_runs import MOVE_RESETS, RESET_SCHEMA
from receiver.store.sqlite_runs import SCHEMA as RUN_SCHEMA
from receiver.store.sqlite_values import labels_json, micros, opt_micros, opt_time, time
from receiver.store.sqlite_watchdog import SCHEMA as WATCHDOG_SCHEMA

T = TypeVar("T")

SCHEMA_VERSION = 1
"""Of the inbox database."""
STATE_SCHEMA_VERSION = 9
INBOX_SCHEMA = """
CREATE TABLE inbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    body        TEXT NOT NULL  -- as received: JSON, validated (so UTF-8) before it was accepted
);
CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
"""
_ALERTS_TABLE = """(
    id            INTEGER PRIMARY KEY,  -- in order of first sight: a new alert is appended
    fingerprint   TEXT NOT NULL,        -- unique: the one writer keeps fingerprint -> id (AlertIds)
    status        TEXT NOT NULL,
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    last_changed  INTEGER NOT NULL,
    flips         TEXT NOT NULL,
    labels        TEXT NOT NULL,
    annotations   TEXT NOT NULL,
    generator_url TEXT NOT NULL
)"""
STATE_SCHEMA = f"""
CREATE TABLE progress (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
INSERT INTO progress (name, seq) VALUES ('inbox', 0);
CREATE TABLE alerts {_ALERTS_TABLE};
CREATE INDEX alerts_by_status ON alerts (status);
CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY,  -- the inbox seq it came from
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
{INCIDENT_SCHEMA}{RUN_SCHEMA}{RESET_SCHEMA}{EVIDENCE_SCHEMA}{WATCHDOG_SCHEMA}{OUTBOX_SCHEMA}{ESCALATION_SCHEMA}"""
_COPIED = (
    "fingerprint, status, starts_at, ends_at, first_seen, last_seen, last_changed, flips, labels, annotations,"
    " generator_url"
)
STATE_UPGRADES = {
    1: f"""
CREATE TABLE alerts_v2 {_ALERTS_TABLE};
INSERT INTO alerts_v2 ({_COPIED}) SELECT {_COPIED} FROM alerts ORDER BY first_seen, fingerprint;
DROP TABLE alerts;
ALTER TABLE alerts_v2 RENAME TO alerts;
CREATE INDEX alerts_by_status ON alerts (status);
""",
    2: INCIDENT_SCHEMA,
    3: RUN_SCHEMA,
    4: MOVE_RESETS,
    5: EVIDENCE_SCHEMA,
    6: WATCHDOG_SCHEMA,
    7: OUTBOX_SCHEMA,
    8: ESCALATION_SCHEMA,
}
"""Scripts that bring a state database from a version to the next.

1 -> 2: alerts keyed by id; 2 -> 3: incidents; 3 -> 4: playbook runs; 4 -> 5: circuit-breaker resets in
their own table, no longer fake runs; 5 -> 6: evidence requests and results; 6 -> 7: the watchdog's
arrivals (the dead man's switch), none yet: it arms again at the next two, as it did after any restart before;
7 -> 8: the notification outbox, the channels of each incident, update deadlines (empty: incidents opened
before the upgrade are routed at their next change); 8 -> 9: escalation deadlines (none: incidents opened before
the upgrade do not escalate)."""
PRUNE_CHUNK = 10_000
"""Rows of the news log looked at per pruning statement."""
INBOX_ALIAS = "ib"
"""The name under which connections to the state database attach the inbox database."""
STATE_COLUMNS = "fingerprint, status, starts_at, ends_at, first_seen, last_seen, last_changed, flips"
ALERT_COLUMNS = f"{STATE_COLUMNS}, labels, annotations, generator_url"


def _from_json_rows(columns: str) -> str:
    """``SELECT`` the columns of each row of a JSON array of arrays passed as the one parameter."""
    values = ", ".join(f"value ->> {i}" for i in range(len(columns.split(", "))))
    return f"SELECT {values} FROM json_each(?) WHERE true"


_NOTIFICATION_COLUMNS = (
    "id, received_at, receiver, group_key, group_labels, external_url, truncated_alerts, alert_count"
)
_EVENT_COLUMNS = "fingerprint, kind, starts_at, ends_at, at, notification_id"


def _values(columns: str) -> str:
    return f"({columns}) VALUES ({', '.join('?' * len(columns.split(', ')))})"


_INSERT_NOTIFICATIONS = f"INSERT INTO notifications {_values(_NOTIFICATION_COLUMNS)}"
_INSERT_EVENTS = f"INSERT INTO alert_events {_values(_EVENT_COLUMNS)}"
_INSERT_ALERTS = f"INSERT INTO alerts {_values('id, ' + ALERT_COLUMNS)}"
_UPDATED = [c for c in ALERT_COLUMNS.split(", ") if c not in ("fingerprint", "first_seen")]
_UPDATED_AT = [ALERT_COLUMNS.split(", ").index(c) for c in _UPDATED]
_UPDATE_ALERTS = f"UPDATE alerts SET {', '.join(f'{c} = ?' for c in _UPDATED)} WHERE id = ?"
_APPEND_INBOX = f"INSERT INTO inbox (received_at, body) {_from_json_rows('received_at, body')}"
_LAST_SEEN = ALERT_COLUMNS.split(", ").index("last_seen")
_UPDATE_LAST_SEEN = "UPDATE alerts SET last_seen = ? WHERE id = ?"


def transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` in one write transaction: committed whole, or rolled back whole."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def migrate(
    db: sqlite3.Connection, schema: str, version: int = SCHEMA_VERSION, upgrades: Mapping[int, str] | None = None
) -> None:
    """Create ``schema`` in a new database, or upgrade an older one step by step; refuse a newer one.

    Each step runs in its own transaction with the version it reaches, so a crash leaves a database
    at a version it can start from again.
    """
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found == 0:
        db.executescript(f"BEGIN; {schema} PRAGMA user_version = {version}; COMMIT;")
        return
    while found < version and upgrades and found in upgrades:
        db.executescript(f"BEGIN; {upgrades[found]} PRAGMA user_version = {found + 1}; COMMIT;")
        found += 1
    if found != version:
        raise StoreError(f"database schema version {found} is not {version}, the one this receiver knows")


def migrate_inbox(db: sqlite3.Connection) -> None:
    """Create or check the inbox database."""
    migrate(db, INBOX_SCHEMA)


def migrate_state(db: sqlite3.Connection) -> None:
    """Create, upgrade or check the state database."""
    migrate(db, STATE_SCHEMA, STATE_SCHEMA_VERSION, STATE_UPGRADES)


def append_inbox(db: sqlite3.Connection, entries: Sequence[tuple[bytes, datetime]]) -> list[int]:
    """Append webhook bodies (valid UTF-8 JSON) to the inbox; their sequence numbers, in order.

    One statement, run outside any explicit transaction: it is its own
    transaction, all rows or none, committed (and synced) when it returns.
    One call into SQLite also means one release of the GIL, not four.
    """
    if db.in_transaction:
        raise StoreError("append_inbox commits by itself; call it outside a transaction")
    rows = [[micros(at), body.decode()] for body, at in entries]
    last = db.execute(_APPEND_INBOX, (orjson.dumps(rows).decode(),)).lastrowid or 0
    return list(range(last - len(entries) + 1, last + 1))  # one writer: one statement's seqs are contiguous


def inbox(db: sqlite3.Connection, after: int, limit: int) -> list[InboxEntry]:
    """Inbox entries after ``after``, oldest first (on a state connection, inbox attached)."""
    query = f"SELECT seq, received_at, body FROM {INBOX_ALIAS}.inbox WHERE seq > ? ORDER BY seq LIMIT ?"
    rows = db.execute(query, (after, limit))
    return [InboxEntry(seq, time(at), body.encode()) for seq, at, body in rows]


def cursor(db: sqlite3.Connection) -> int:
    """The last processed inbox seq."""
    seq: int = db.execute("SELECT seq FROM progress WHERE name = 'inbox'").fetchone()[0]
    return seq


def continue_after(db: sqlite3.Connection, cursor: int) -> int | None:
    """Number the inbox's next entry after ``cursor``; the last seq the inbox had when it was behind, else None.

    An inbox numbered at or below the state's cursor (its database deleted, or an older copy put back)
    would give new notifications seqs the engine counts as processed already: they would be answered
    200 and never processed. Sequence numbers never go backwards: ``sqlite_sequence`` (AUTOINCREMENT's
    high-water mark) is moved up to the cursor. On the inbox's writer connection.
    """

    def work(db: sqlite3.Connection) -> int | None:
        last: int = db.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'inbox'), 0),"
            " coalesce((SELECT max(seq) FROM inbox), 0))"
        ).fetchone()[0]
        if last >= cursor:
            return None
        if not db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'inbox'", (cursor,)).rowcount:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('inbox', ?)", (cursor,))
        return last

    return transaction(db, work)


def backlog(db: sqlite3.Connection) -> int:
    """Inbox entries after the cursor."""
    n: int = db.execute(
        "SELECT count(*) FROM inbox WHERE seq > (SELECT seq FROM progress WHERE name = 'inbox')"
    ).fetchone()[0]
    return n


def oldest_unprocessed(db: sqlite3.Connection) -> datetime | None:
    """When the first inbox entry after the cursor was received (None: nothing waits). One row, by seq."""
    row = db.execute(
        "SELECT received_at FROM inbox WHERE seq > (SELECT seq FROM progress WHERE name = 'inbox') ORDER BY seq LIMIT 1"
    ).fetchone()
    return None if row is None else time(row[0])


def prune_inbox(db: sqlite3.Connection, before: int, processed: int) -> int:
    """Delete inbox entries received before ``before`` and processed (seq up to ``processed``)."""
    return db.execute("DELETE FROM inbox WHERE received_at < ? AND seq <= ?", (before, processed)).rowcount


class AlertIds:
    """Which row holds each alert: fingerprint -> id, kept in memory by the state's one writer.

    The alerts table is keyed by an id given in order of first sight, so a new alert is appended. With
    the fingerprint (a hash) as its key, every new alert was inserted at a random place of an index,
    and the state wrote 24 KiB to the disk per notification of 5 new alerts instead of 5 KiB; those
    writes are what delayed the inbox's fsyncs. Loaded from the table the first time it is needed, and
    again whenever the table holds rows this process did not write.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._last = -1  # -1: not loaded

    def __len__(self) -> int:
        return len(self._ids)

    def current(self, db: sqlite3.Connection) -> AlertIds:
        """These ids, (re)loaded if the table's last id is not the last one known here."""
        last = db.execute("SELECT coalesce(max(id), 0) FROM alerts").fetchone()[0]
        if last != self._last:
            self._ids = dict(db.execute("SELECT fingerprint, id FROM alerts"))
            self._last = last
        return self

    def get(self, fingerprint: str) -> int | None:
        """The id of the alert's row, if it has one."""
        return self._ids.get(fingerprint)

    def new(self, fingerprints: Sequence[str]) -> dict[str, int]:
        """Ids for alerts never seen: the next ones in order (recorded only by ``add``)."""
        return {fp: self._last + 1 + i for i, fp in enumerate(fingerprints)}

    def forget(self, fingerprints: Collection[str]) -> None:
        """Drop the ids of rows that were deleted."""
        for fingerprint in fingerprints:
            self._ids.pop(fingerprint, None)

    def add(self, added: Mapping[str, int]) -> None:
        """Record ids whose rows are committed."""
        if added:
            self._ids.update(added)
            self._last = max(self._last, *added.values())


def load_states(db: sqlite3.Connection, fingerprints: Collection[str], ids: AlertIds) -> dict[str, AlertState]:
    """The stored states of these alerts (on the state writer, the one that keeps ``ids``)."""
    return _load_states(db, list(fingerprints), ids.current(db))


def write_batch(db: sqlite3.Connection, batch: Batch, ids: AlertIds) -> dict[str, int]:
    """Check the cursor, write the alerts, notifications and news of ``batch``, and move the cursor past it.

    Returns the ids given to alerts seen for the first time, for ``ids.add`` once the transaction is committed.
    """
    _check_cursor(db, batch)
    rows = _Rows()
    for decision, alert in batch.alerts:
        rows.alert(decision, alert)
    for item in batch.processed:
        rows.notification(item)
    added = rows.write(db, ids.current(db))
    db.execute("UPDATE progress SET seq = ? WHERE name = 'inbox'", (batch.cursor,))
    return added


def _check_cursor(db: sqlite3.Connection, batch: Batch) -> None:
    """The defence against two engines: the cursor is where the batch was read from, and the batch comes after it."""
    expected = cursor(db)
    if batch.processed and batch.processed[0].seq <= expected:
        raise StoreError(f"inbox entry {batch.processed[0].seq} was processed already (cursor at {expected})")
    if expected != batch.after:
        raise StoreError(f"the cursor is at {expected}, not {batch.after}: another engine processed the inbox")


class _Rows:
    """What one batch writes, table by table."""

    def __init__(self) -> None:
        self.notifications: list[list[Any]] = []
        self.events: list[list[Any]] = []
        self.changed: dict[str, list[Any]] = {}
        self.seen: dict[str, int] = {}

    def alert(self, decision: Decision, alert: Alert) -> None:
        fp = alert.fingerprint
        if decision.outcome is Outcome.DUPLICATE:
            self.seen[fp] = micros(decision.state.last_seen)
            if fp in self.changed:
                self.changed[fp][_LAST_SEEN] = self.seen[fp]
        elif decision.outcome is not Outcome.STALE:
            self.changed[fp] = _alert_row(decision.state, alert)
            self.seen.pop(fp, None)

    def notification(self, item: Processed) -> None:
        notification = item.notification
        news = [d for d in item.decisions if d.is_news]
        if notification is None or not news:
            return
        if item.received_at is None:
            raise StoreError(f"inbox entry {item.seq} carries news but no receipt time")
        at = micros(item.received_at)
        self.notifications.append(
            [
                item.seq,
                at,
                notification.receiver,
                notification.group_key,
                labels_json(notification.group_labels),
                notification.external_url,
                notification.truncated_alerts,
                len(notification.alerts),
            ]
        )
        self.events.extend(
            [
                d.state.fingerprint,
                d.outcome.value,
                micros(d.state.starts_at),
                opt_micros(d.state.ends_at),
                at,
                item.seq,
            ]
            for d in news
        )

    def write(self, db: sqlite3.Connection, ids: AlertIds) -> dict[str, int]:
        """Write every table; the ids given to alerts that had no row."""
        updated = {fp: row for fp, row in self.changed.items() if ids.get(fp) is not None}
        missing = _update_alerts(db, ids, updated)  # rows deleted behind this writer's back get new ones
        added = ids.new([fp for fp in self.changed if fp not in updated or fp in missing])
        inserts = [[added[fp], *row] for fp, row in self.changed.items() if fp in added]
        seen = [(at, ids.get(fp)) for fp, at in self.seen.items() if fp not in self.changed]
        for sql, rows in (
            (_INSERT_NOTIFICATIONS, self.notifications),
            (_INSERT_EVENTS, self.events),
            (_INSERT_ALERTS, inserts),
            (_UPDATE_LAST_SEEN, seen),
        ):
            if rows:
                db.executemany(sql, rows)
        return added


def _update_alerts(db: sqlite3.Connection, ids: AlertIds, rows: Mapping[str, list[Any]]) -> set[str]:
    """Update the alerts' rows; the fingerprints whose row was not there (deleted by another connection)."""
    if not rows:
        return set()
    updates = [[*(row[i] for i in _UPDATED_AT), ids.get(fp)] for fp, row in rows.items()]
    if db.executemany(_UPDATE_ALERTS, updates).rowcount == len(updates):
        return set()
    wanted = {ids.get(fp): fp for fp in rows}
    found: set[int] = set()
    keys = list(wanted)
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        query = f"SELECT id FROM alerts WHERE id IN ({','.join('?' * len(chunk))})"
        found.update(row_id for (row_id,) in db.execute(query, chunk))
    return {fp for row_id, fp in wanted.items() if row_id not in found}


def silent(db: sqlite3.Connection, cutoff: int) -> list[str]:
    """Firing alerts last seen before ``cutoff``, in order of first sight."""
    query = "SELECT fingerprint FROM alerts WHERE status = 'firing' AND last_seen < ? ORDER BY id"
    return [fp for (fp,) in db.execute(query, (cutoff,))]


def expire(db: sqlite3.Connection, expiry: Expiry) -> None:
    """Mark the alerts of ``expiry`` expired, with an event each; refuse if one of them is no longer silent."""
    now = micros(expiry.now)
    rows = db.execute(
        "SELECT id, fingerprint, starts_at, ends_at FROM alerts WHERE status = 'firing' AND last_seen < ?",
        (micros(expiry.cutoff),),
    ).fetchall()
    by_fingerprint = {fp: (row_id, starts, ends) for row_id, fp, starts, ends in rows}
    gone = [fp for fp in expiry.fingerprints if fp not in by_fingerprint]
    if gone:
        raise StoreError(f"{len(gone)} alerts to expire are no longer silent firing ones (e.g. {gone[0]})")
    chosen = [(fp, *by_fingerprint[fp]) for fp in expiry.fingerprints]
    marked = ((now, row_id) for _, row_id, _, _ in chosen)
    db.executemany("UPDATE alerts SET status = 'expired', last_changed = ? WHERE id = ?", marked)
    db.executemany(
        "INSERT INTO alert_events (fingerprint, kind, starts_at, ends_at, at) VALUES (?, 'expired', ?, ?, ?)",
        ((fp, starts, ends, now) for fp, _, starts, ends in chosen),
    )


def prune_alerts(db: sqlite3.Connection, before: int) -> list[str]:
    """Delete resolved and expired alerts unchanged since ``before``, and the news and notifications older than it.

    Returns the fingerprints of the alerts deleted.
    """
    query = "DELETE FROM alerts WHERE status != 'firing' AND last_changed < ? RETURNING fingerprint"
    deleted = [fp for (fp,) in db.execute(query, (before,)).fetchall()]
    _prune_oldest(db, "alert_events", "seq", "at", before)
    _prune_oldest(db, "notifications", "id", "received_at", before)
    return deleted


def _prune_oldest(db: sqlite3.Connection, table: str, key: str, at: str, before: int) -> None:
    """Delete rows older than ``before``, oldest keys first, a chunk at a time, without an index on the time.

    Keys grow with time (almost: an expiry's news carries the time it ran), so once a whole chunk of the oldest
    rows is newer than ``before``, so is everything after it.
    """
    chunk = f"SELECT {key} FROM {table} ORDER BY {key} LIMIT {PRUNE_CHUNK}"
    while db.execute(f"DELETE FROM {table} WHERE {key} IN ({chunk}) AND {at} < ?", (before,)).rowcount:
        pass


def _load_states(db: sqlite3.Connection, fps: list[str], ids: AlertIds) -> dict[str, AlertState]:
    rows = [i for i in map(ids.get, fps) if i is not None]
    states: dict[str, AlertState] = {}
    for i in range(0, len(rows), 500):
        chunk = rows[i : i + 500]
        query = f"SELECT {STATE_COLUMNS} FROM alerts WHERE id IN ({','.join('?' * len(chunk))})"
        states.update((row[0], state(row)) for row in db.execute(query, chunk))
    return states


def events(db: sqlite3.Connection, after: int, limit: int) -> list[AlertEvent]:
    """Alert events after ``after``, oldest first."""
    rows = db.execute(
        "SELECT seq, fingerprint, kind, starts_at, ends_at, at, notification_id FROM alert_events"
        " WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, limit),
    )
    return [
        AlertEvent(seq, fp, kind, time(starts), opt_time(ends), time(at), nid)
        for seq, fp, kind, starts, ends, at, nid in rows
    ]


def _alert_row(s: AlertState, alert: Alert) -> list[Any]:
    return [
        s.fingerprint,
        s.status.value,
        micros(s.starts_at),
        opt_micros(s.ends_at),
        micros(s.first_seen),
        micros(s.last_seen),
        micros(s.last_changed),
        json.dumps([micros(f) for f in s.flips]) if s.flips else "[]",
        labels_json(alert.labels),
        labels_json(alert.annotations),
        alert.generator_url,
    ]


def state(row: Sequence[Any]) -> AlertState:
    fp, status, starts, ends, first, last, changed, flips = row
    return AlertState(
        fingerprint=fp,
        status=Status(status),
        starts_at=time(starts),
        ends_at=opt_time(ends),
        first_seen=time(first),
        last_seen=time(last),
        last_changed=time(changed),
        flips=tuple(time(f) for f in json.loads(flips)) if flips != "[]" else (),
    )


def count_alerts(db: sqlite3.Connection) -> dict[Status, int]:
    """How many alerts are in each status."""
    counts = {status: 0 for status in Status}
    counts.update(
        {Status(status): n for status, n in db.execute("SELECT status, count(*) FROM alerts GROUP BY status")}
    )
    return counts


def heartbeat(db: sqlite3.Connection, now: datetime) -> None:
    """A real write, to prove the database takes writes."""
    db.execute("INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?)", (micros(now),))
