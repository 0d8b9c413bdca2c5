"""The SQLite store's escalation deadlines: where each incident's escalation stands, and when it moves next.

One row per escalating incident, written in the transaction of the change that starts, advances or ends
it (``Notices.escalations``), together with the outbox rows of the step it fires: a crash loses no step
and fires none twice. The engine keeps them in memory and claims the earliest when it is due.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from receiver.notify.planning import Notices
from receiver.oncall.policies import Escalation
from receiver.store.sqlite_values import micros, time

SCHEMA = """
CREATE TABLE escalations (
    incident   TEXT PRIMARY KEY,
    policy     TEXT NOT NULL,
    step       INTEGER NOT NULL,   -- the next step to fire, from 0 (-1: every step fired, the last wait runs)
    round      INTEGER NOT NULL,
    due_at     INTEGER NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE INDEX escalations_due ON escalations (due_at);
"""


def write(db: sqlite3.Connection, notices: Notices) -> None:
    """Record where escalations stand now (a None ends one)."""
    for incident, escalation in notices.escalations.items():
        if escalation is None:
            db.execute("DELETE FROM escalations WHERE incident = ?", (incident,))
            continue
        db.execute(
            "INSERT INTO escalations (incident, policy, step, round, due_at, started_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (incident) DO UPDATE SET policy = excluded.policy, step = excluded.step,"
            " round = excluded.round, due_at = excluded.due_at, started_at = excluded.started_at",
            (
                incident,
                escalation.policy,
                escalation.step,
                escalation.round,
                micros(escalation.due),
                micros(escalation.started),
            ),
        )


def load(db: sqlite3.Connection, incidents: Sequence[str]) -> list[Escalation]:
    """The escalations of these incidents."""
    found: list[Escalation] = []
    for start in range(0, len(incidents), 500):
        chunk = list(incidents[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            f"SELECT incident, policy, step, round, due_at, started_at FROM escalations WHERE incident IN ({marks})",
            chunk,
        )
        found.extend(Escalation(i, p, s, r, time(d), time(st)) for i, p, s, r, d, st in rows)
    return found


def active(db: sqlite3.Connection) -> int:
    """How many incidents escalate now."""
    return int(db.execute("SELECT count(*) FROM escalations").fetchone()[0])
