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
from typing import Any

import orjson

from receiver.runs import RunIntent, RunStatus
from receiver.store.sqlite_values import labels_json, micros

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
