"""The SQLite store's outbox: notifications written with the change that causes them, claimed when due.

Three tables. ``outbox``: one row per notification, unique on its idempotency key (incident, event,
channel, destination), written in the transaction of the incident change (``write``); a mergeable
refresh is not inserted while a row of the same incident and target is pending, it is counted on that
row instead (it will render the incident as it is when sent). ``notify_targets``: the channels each
incident was routed to, with what deliveries left for the next (a Slack ``ts``). ``update_cadence``:
each open incident's next status update deadline. The sender claims due rows (``claim``) in order per
incident and target (a Slack reply never overtakes its message), and records each outcome with its
timeline line in one transaction (``finish``). Functions run on a connection handed to them, inside
the caller's transaction. Times are microseconds since the epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from receiver.incidents.lifecycle import EventKind, Signal
from receiver.notify.model import Delivery, Intent, NotificationRecord, Reason, State, Target
from receiver.notify.planning import Notices
from receiver.store.sqlite_values import micros, opt_micros, opt_time, time

SCHEMA = """
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,   -- incident/event/channel[:destination]
    incident        TEXT NOT NULL,
    signal          TEXT NOT NULL,
    target          TEXT NOT NULL,          -- channel[:destination]
    kind            TEXT NOT NULL,          -- the channel's type
    route           TEXT NOT NULL,
    text            TEXT NOT NULL,
    actor           TEXT NOT NULL,
    at              INTEGER NOT NULL,       -- when what it tells happened
    mergeable       INTEGER NOT NULL,
    state           TEXT NOT NULL,          -- pending, sending, sent, failed, interrupted, skipped
    attempts        INTEGER NOT NULL DEFAULT 0,
    resumed         INTEGER NOT NULL DEFAULT 0,
    merged          INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER,
    sent_at         INTEGER,
    reason          TEXT,
    last_error      TEXT NOT NULL DEFAULT '',
    provider_id     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_open ON outbox (incident, target, id) WHERE state IN ('pending', 'sending');
CREATE INDEX outbox_by_incident ON outbox (incident, id);
CREATE TABLE notify_targets (
    incident TEXT NOT NULL,
    target   TEXT NOT NULL,
    route    TEXT NOT NULL,
    thread   TEXT NOT NULL DEFAULT '{}',  -- JSON object: what deliveries left for the next
    PRIMARY KEY (incident, target)
);
CREATE TABLE update_cadence (incident TEXT PRIMARY KEY, due_at INTEGER NOT NULL);
"""
_COLUMNS = (
    "id, key, incident, signal, target, kind, route, text, actor, at, state, attempts, resumed, merged,"
    " created_at, next_attempt_at, sent_at, reason, last_error, provider_id"
)
_MERGE = (
    "UPDATE outbox SET merged = merged + 1, text = substr(text || ?, 1, 2000) WHERE id = (SELECT max(id) FROM outbox"
    " WHERE incident = ? AND target = ? AND state = 'pending' AND signal IN ({signals}))"
)
_TRIGGERS = ("opened", "escalated", "services_joined", "reopened")
"""Rows that render the incident's whole state: news that only adds to that state merges into them."""


def _merge(db: sqlite3.Connection, intent: Intent) -> bool:
    """Merge a mergeable intent into a pending row of its incident and target that tells as much; whether it did.

    An ``alerts_changed`` refresh merges into any pending row (each renders the incident as it is when sent);
    ``services_joined`` only into one that renders the whole state again (opened, escalated, joined, reopened);
    ``run_blocked`` only into a pending ``run_blocked`` (a storm's runs held by the rate limit are one message,
    not one per batch). The merged news's text is added to that row's.
    """
    if intent.signal is Signal.ALERTS_CHANGED:
        signals, text = ",".join(f"'{s.value}'" for s in Signal), ""
    elif intent.signal is Signal.RUN_BLOCKED:
        signals, text = f"'{Signal.RUN_BLOCKED.value}'", f"; {intent.text}"
    else:
        signals, text = ",".join(f"'{s}'" for s in _TRIGGERS), f"; {intent.text}"
    merged: int = db.execute(_MERGE.format(signals=signals), (text, intent.incident, str(intent.target))).rowcount
    return merged > 0


_INSERT = (
    "INSERT OR IGNORE INTO outbox (key, incident, signal, target, kind, route, text, actor, at, mergeable, state,"
    " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)"
)


_CANCEL = (
    "UPDATE outbox SET state = 'skipped', next_attempt_at = NULL,"
    " last_error = 'not sent: the escalation ended before it was due (acknowledged, mitigated or resolved)'"
    " WHERE incident = ? AND signal = 'paged' AND state = 'pending'"
)


def write(db: sqlite3.Connection, notices: Notices) -> None:
    """Record a change's notifications, new targets and deadlines (a repeated key adds nothing)."""
    if not notices:
        return
    if notices.at is None:
        raise ValueError("notices carry the time they were decided at")
    if notices.targets:
        db.executemany(
            "INSERT OR IGNORE INTO notify_targets (incident, target, route) VALUES (?, ?, ?)",
            [(incident, str(target), route) for incident, target, route in notices.targets],
        )
    at = micros(notices.at)
    for incident in sorted(notices.cancel):  # before the change's own rows: nothing waits behind a cancelled page
        db.execute(_CANCEL, (incident,))
    for intent in notices.intents:
        if intent.mergeable and _merge(db, intent):
            continue
        db.execute(
            _INSERT,
            (
                intent.key,
                intent.incident,
                intent.signal.value,
                str(intent.target),
                intent.kind,
                intent.route,
                intent.text,
                intent.actor,
                micros(intent.at),
                int(intent.mergeable),
                at,
                max(at, micros(intent.due)) if intent.due is not None else at,
            ),
        )
    for incident, due in notices.due.items():
        if due is None:
            db.execute("DELETE FROM update_cadence WHERE incident = ?", (incident,))
        else:
            db.execute(
                "INSERT INTO update_cadence (incident, due_at) VALUES (?, ?)"
                " ON CONFLICT (incident) DO UPDATE SET due_at = excluded.due_at",
                (incident, micros(due)),
            )


Kept = tuple[list[tuple[str, Target, str]], dict[str, datetime]]
"""The incidents' targets (incident, target, route) and update deadlines."""


def load(db: sqlite3.Connection, incidents: Sequence[str]) -> Kept:
    """The targets and deadlines of these incidents."""
    targets: list[tuple[str, Target, str]] = []
    due: dict[str, datetime] = {}
    for start in range(0, len(incidents), 500):
        chunk = list(incidents[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = db.execute(f"SELECT incident, target, route FROM notify_targets WHERE incident IN ({marks})", chunk)
        targets.extend((incident, Target.parse(target), route) for incident, target, route in rows)
        rows = db.execute(f"SELECT incident, due_at FROM update_cadence WHERE incident IN ({marks})", chunk)
        due.update((incident, time(at)) for incident, at in rows)
    return targets, due


def claim(db: sqlite3.Connection, now: datetime, limit: int) -> list[Delivery]:
    """Claim due rows, oldest first, each only when no earlier row of its incident and target is still open."""
    rows = db.execute(
        f"UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id IN"
        f" (SELECT o.id FROM outbox o WHERE {_CLAIMABLE} AND o.next_attempt_at <= ?"
        f"  ORDER BY o.next_attempt_at, o.id LIMIT ?) RETURNING {_COLUMNS}",
        (micros(now), limit),
    ).fetchall()
    return sorted((_delivery(db, row) for row in rows), key=lambda d: d.id)


_CLAIMABLE = (
    "o.state = 'pending' AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.incident = o.incident"
    " AND p.target = o.target AND p.id < o.id AND p.state IN ('pending', 'sending'))"
)
"""A pending row no earlier open row of its incident and target holds back."""


def stuck(db: sqlite3.Connection) -> list[Delivery]:
    """Rows left ``sending`` by an engine that stopped: each may or may not have reached its provider."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM outbox WHERE state = 'sending' ORDER BY id").fetchall()
    return [_delivery(db, row) for row in rows]


def defer(db: sqlite3.Connection, ids: Sequence[int], until: datetime, *, resumed: bool = False) -> None:
    """Claimed rows back to pending until ``until``: a rate pacing, not counted as an attempt; or
    ``resumed``: they were interrupted (a crash, an attempt with no answer) and may have reached the
    provider, so their channel reconciles or re-sends them, and the attempt counts.
    """
    db.executemany(
        "UPDATE outbox SET state = 'pending', next_attempt_at = ?,"
        " attempts = CASE WHEN ? THEN attempts ELSE max(attempts - 1, 0) END,"
        " resumed = resumed OR ? WHERE id = ? AND state = 'sending'",
        [(micros(until), int(resumed), int(resumed), i) for i in ids],
    )


@dataclass(frozen=True, slots=True)
class Finished:
    """An attempt's outcome, as the sender records it."""

    id: int
    incident: str
    state: State
    at: datetime
    text: str
    """The timeline's line (empty: none, as for a retry that is not worth a line)."""
    next_attempt_at: datetime | None = None
    reason: Reason | None = None
    error: str = ""
    provider_id: str = ""
    target: Target | None = None
    thread: Mapping[str, str] | None = None
    """Merged into the target's kept state."""
    resumed: bool = False
    """The next attempt reconciles first (this one got no answer)."""


def finish(db: sqlite3.Connection, done: Finished) -> None:
    """Record an attempt's outcome, the target's kept state and the timeline's line."""
    db.execute(
        "UPDATE outbox SET state = ?, next_attempt_at = ?, sent_at = ?, reason = ?, last_error = ?,"
        " provider_id = CASE WHEN ? != '' THEN ? ELSE provider_id END, resumed = resumed OR ? WHERE id = ?",
        (
            done.state.value,
            opt_micros(done.next_attempt_at),
            micros(done.at) if done.state is State.SENT else None,
            done.reason.value if done.reason else None,
            done.error,
            done.provider_id,
            done.provider_id,
            int(done.resumed),
            done.id,
        ),
    )
    if done.thread and done.target is not None:
        row = db.execute(
            "SELECT thread FROM notify_targets WHERE incident = ? AND target = ?", (done.incident, str(done.target))
        ).fetchone()
        kept = {**(orjson.loads(row[0]) if row else {}), **done.thread}
        db.execute(
            "INSERT INTO notify_targets (incident, target, route, thread) VALUES (?, ?, '', ?)"
            " ON CONFLICT (incident, target) DO UPDATE SET thread = excluded.thread",
            (done.incident, str(done.target), orjson.dumps(kept).decode()),
        )
    if done.text:
        db.execute(
            "INSERT INTO incident_events (incident, at, kind, text, actor, fingerprint) VALUES (?, ?, ?, ?, ?, NULL)",
            (done.incident, micros(done.at), EventKind.NOTIFICATION.value, done.text, "receiver"),
        )


def prune(db: sqlite3.Connection, before: datetime) -> int:
    """Forget rows that ended (sent, failed, interrupted, skipped) and were written before ``before``; how many."""
    done = "('sent', 'failed', 'interrupted', 'skipped')"
    deleted: int = db.execute(
        f"DELETE FROM outbox WHERE state IN {done} AND created_at < ?", (micros(before),)
    ).rowcount
    return deleted


def next_due(db: sqlite3.Connection) -> datetime | None:
    """When the earliest row that can be claimed is due (one held back by a row in flight is not: its turn
    comes when that one ends, which wakes the sender)."""
    row = db.execute(f"SELECT min(o.next_attempt_at) FROM outbox o WHERE {_CLAIMABLE}").fetchone()
    return opt_time(row[0])


def backlog(db: sqlite3.Connection) -> tuple[int, datetime | None]:
    """How many rows are pending or sending, and when the oldest of them was written."""
    count, oldest = db.execute(
        "SELECT count(*), min(created_at) FROM outbox WHERE state IN ('pending', 'sending')"
    ).fetchone()
    return count, opt_time(oldest)


def listing(
    db: sqlite3.Connection, incident: str | None, state: State | None, before: int | None, limit: int
) -> list[NotificationRecord]:
    """Rows newest first, filtered, a page at a time (ids below ``before``)."""
    where: list[str] = ["1"]
    args: list[str | int] = []
    if incident is not None:
        where.append("incident = ?")
        args.append(incident)
    if state is not None:
        where.append("state = ?")
        args.append(state.value)
    if before is not None:
        where.append("id < ?")
        args.append(before)
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    return [_record(row) for row in rows]


def _thread(db: sqlite3.Connection, incident: str, target: str) -> dict[str, str]:
    query = "SELECT thread FROM notify_targets WHERE incident = ? AND target = ?"
    row = db.execute(query, (incident, target)).fetchone()
    kept: dict[str, str] = orjson.loads(row[0]) if row else {}
    return kept


def _delivery(db: sqlite3.Connection, row: Sequence[Any]) -> Delivery:
    (id, key, incident, signal, target, kind, route, text, actor, at, _, attempts, resumed, _, created_at, *_) = row
    return Delivery(
        id,
        key,
        incident,
        Signal(signal),
        Target.parse(target),
        kind,
        text,
        actor,
        time(at),
        time(created_at),
        attempts,
        _thread(db, incident, target),
        bool(resumed),
        route,
    )


def _record(row: Sequence[Any]) -> NotificationRecord:
    (id, key, incident, signal, target, kind, _, _, _, _, state, attempts, _, merged, created_at, *rest) = row
    next_attempt_at, sent_at, reason, last_error, provider_id = rest
    return NotificationRecord(
        id,
        key,
        incident,
        Signal(signal),
        Target.parse(target),
        kind,
        State(state),
        attempts,
        time(created_at),
        opt_time(next_attempt_at) if state == "pending" else None,
        opt_time(sent_at),
        last_error,
        Reason(reason) if reason else None,
        provider_id,
        merged,
    )
