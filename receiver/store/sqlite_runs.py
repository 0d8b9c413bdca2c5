"""The SQLite store's playbook runs: recorded with the news that triggers them, then carried to their end.

A run's row is inserted in the transaction that records the news (``INSERT
OR IGNORE`` on its identity: a repeated notification or a replayed inbox
adds nothing), and updated by the runner as the guardrails judge it and its
steps end. Functions run on a connection handed to them, inside the
caller's transaction. Times are microseconds since the epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from receiver.playbooks.runs import RunIntent, RunStatus
from receiver.store.sqlite_values import labels_json, micros, time

SCHEMA = """
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    playbook    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    episode     INTEGER NOT NULL,  -- the alert's startsAt
    incident    TEXT,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    dry_run     INTEGER NOT NULL DEFAULT 0,
    alert       TEXT NOT NULL,     -- JSON: what templates and conditions see of the alert
    plan        TEXT NOT NULL,     -- JSON: every step with its rendered input, or why it is refused
    steps       TEXT NOT NULL,     -- JSON: every step's result so far
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    UNIQUE (playbook, fingerprint, episode)
);
CREATE INDEX runs_not_final ON runs (status) WHERE status IN ('pending', 'awaiting_approval', 'running');
CREATE INDEX runs_by_start ON runs (started_at);                -- the guardrails' last hour
CREATE INDEX runs_by_playbook ON runs (playbook, finished_at);  -- the circuit breaker's failures in a row
"""
_INSERT = (
    "INSERT OR IGNORE INTO runs (playbook, fingerprint, episode, incident, status, reason, alert, plan, steps,"
    " created_at) VALUES (?, ?, ?, ?, 'pending', '', ?, ?, '[]', ?)"
)


def write(db: sqlite3.Connection, intents: Sequence[RunIntent]) -> int:
    """Record runs asked for; those already recorded (same playbook, alert, episode) are left alone. How many new."""
    if not intents:
        return 0
    before = db.total_changes
    db.executemany(_INSERT, [_row(i) for i in intents])
    return db.total_changes - before


def _row(intent: RunIntent) -> list[Any]:
    alert = intent.alert
    facts = {
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "labels": orjson.loads(labels_json(alert.labels)),
        "annotations": dict(alert.annotations),
        "startsAt": alert.starts_at.isoformat(),
    }
    plan = [
        {"name": s.name, "action": s.action, "inputs": dict(s.inputs), "when": s.when, "refused": s.refused}
        for s in intent.plan.steps
    ]
    return [
        intent.playbook,
        intent.fingerprint,
        micros(intent.episode),
        intent.incident,
        orjson.dumps(facts).decode(),
        orjson.dumps(plan).decode(),
        micros(intent.created_at),
    ]


def count(db: sqlite3.Connection, status: RunStatus | None = None) -> int:
    """How many runs (in ``status``)."""
    if status is None:
        n: int = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    else:
        n = db.execute("SELECT count(*) FROM runs WHERE status = ?", (status.value,)).fetchone()[0]
    return n


_RUN_COLUMNS = "id, playbook, fingerprint, episode, incident, status, reason, dry_run, alert, plan, steps, created_at"


def pending(db: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    """Runs the guardrails have not judged yet, oldest first, as plain rows."""
    rows = db.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,)
    ).fetchall()
    return [dict(zip(_RUN_COLUMNS.split(", "), row, strict=True)) for row in rows]


def history(db: sqlite3.Connection, since: datetime) -> list[tuple[str, str, datetime, bool]]:
    """(playbook, plan JSON, started_at, finished) of runs started since ``since``."""
    rows = db.execute(
        "SELECT playbook, plan, started_at, finished_at FROM runs WHERE started_at >= ?", (micros(since),)
    ).fetchall()
    return [(playbook, plan, time(started), finished is not None) for playbook, plan, started, finished in rows]


def failures_in_a_row(db: sqlite3.Connection, playbook: str, window: int) -> int:
    """How many of the playbook's last finished runs failed, counting back to its last success."""
    statuses = [
        s
        for (s,) in db.execute(
            "SELECT status FROM runs WHERE playbook = ? AND status IN ('succeeded', 'failed', 'breaker_reset')"
            " ORDER BY finished_at DESC, id DESC LIMIT ?",
            (playbook, window),
        )
    ]
    count = 0
    for status in statuses:
        if status != RunStatus.FAILED.value:
            break
        count += 1
    return count


def update(db: sqlite3.Connection, run_id: int, **values: Any) -> None:
    """Set columns of a run (status, reason, dry_run, steps, started_at, finished_at)."""
    allowed = {"status", "reason", "dry_run", "steps", "started_at", "finished_at"}
    if not values or set(values) - allowed:
        raise ValueError(f"cannot set {sorted(set(values) - allowed)} of a run")
    assignments = ", ".join(f"{k} = ?" for k in values)
    stored = [micros(v) if isinstance(v, datetime) else v for v in values.values()]
    db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*stored, run_id))


def interrupt(db: sqlite3.Connection, now: int) -> list[str]:
    """Mark runs that were running as interrupted (the engine stopped under them); their playbooks."""
    rows = db.execute(
        "UPDATE runs SET status = 'interrupted', reason = 'the engine stopped while it ran; not started again',"
        " finished_at = ? WHERE status = 'running' RETURNING playbook",
        (now,),
    ).fetchall()
    return [playbook for (playbook,) in rows]


_LISTED = "id, playbook, fingerprint, incident, status, reason, dry_run, created_at, started_at, finished_at"


def listing(
    db: sqlite3.Connection, status: str | None, playbook: str | None, before: int | None, limit: int
) -> list[dict[str, Any]]:
    """Runs, newest first, filtered; times as datetimes."""
    where: list[str] = ["1"]
    args: list[Any] = []
    for column, value in (("status", status), ("playbook", playbook)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if before is not None:
        where.append("id < ?")
        args.append(before)
    rows = db.execute(
        f"SELECT {_LISTED} FROM runs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*args, limit)
    ).fetchall()
    return [_times(dict(zip(_LISTED.split(", "), row, strict=True))) for row in rows]


def one(db: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
    """One run with its alert, plan and steps (parsed)."""
    columns = f"{_LISTED}, episode, alert, plan, steps"
    row = db.execute(f"SELECT {columns} FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    found = _times(dict(zip(columns.split(", "), row, strict=True)))
    for key in ("alert", "plan", "steps"):
        found[key] = orjson.loads(found[key])
    return found


def _times(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("created_at", "started_at", "finished_at", "episode"):
        if key in row and row[key] is not None:
            row[key] = time(row[key])
    return row


def expire_approvals(
    db: sqlite3.Connection, before: datetime, now: datetime, reason: str
) -> list[tuple[int, str, str | None]]:
    """Reject runs awaiting approval since before ``before``; their (id, playbook, incident)."""
    rows = db.execute(
        "UPDATE runs SET status = 'rejected', reason = ?, finished_at = ?"
        " WHERE status = 'awaiting_approval' AND created_at < ? RETURNING id, playbook, incident",
        (reason, micros(now), micros(before)),
    ).fetchall()
    return [(run_id, playbook, incident) for run_id, playbook, incident in rows]


def reset_breaker(db: sqlite3.Connection, playbook: str, reason: str, now: datetime) -> int:
    """Record that a person closed the playbook's circuit breaker (failures before it no longer count); its id."""
    at = micros(now)
    return (
        db.execute(
            "INSERT INTO runs (playbook, fingerprint, episode, status, reason, alert, plan, steps, created_at,"
            " finished_at) VALUES (?, '', ?, 'breaker_reset', ?, '{}', '[]', '[]', ?, ?)",
            (playbook, at, reason, at, at),
        ).lastrowid
        or 0
    )


def block(db: sqlite3.Connection, blocked: Sequence[tuple[int, str]], now: datetime) -> None:
    """Mark runs blocked, each with its reason, in one statement."""
    at = micros(now)
    db.executemany(
        "UPDATE runs SET status = 'blocked', reason = ?, finished_at = ? WHERE id = ?",
        [(reason, at, run_id) for run_id, reason in blocked],
    )
