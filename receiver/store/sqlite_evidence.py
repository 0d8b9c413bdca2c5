"""The SQLite store's evidence: requests written with the change that asks for them, claimed, captured, stored.

A request's row is inserted in the transaction of the change that asks for
it (``INSERT OR IGNORE`` on (incident, fingerprint, episode): once per alert
episode, whatever is repeated or replayed). The evidence worker claims
pending rows; at its start, rows left claimed by an engine that stopped are
pending again (reads are idempotent: capturing twice harms nothing). The
result and its timeline line are one transaction. Functions run on a
connection handed to them, inside the caller's transaction. Times are
microseconds since the epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from receiver.evidence.records import (
    ClaimedEvidence,
    EvidenceRecord,
    EvidenceRequest,
    EvidenceResult,
    EvidenceStatus,
)
from receiver.incidents.lifecycle import EventKind
from receiver.store.sqlite_values import labels_json, micros, opt_time, time

SCHEMA = """
CREATE TABLE evidence (
    id           INTEGER PRIMARY KEY,
    incident     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    episode      INTEGER NOT NULL,  -- the alert's startsAt
    reason       TEXT NOT NULL,
    labels       TEXT NOT NULL,
    status       TEXT NOT NULL,     -- pending, claimed, done
    outcome      TEXT,              -- captured, partial, failed, timeout, no_credentials, nothing
    summary      TEXT NOT NULL DEFAULT '',
    content      TEXT,              -- JSON: what was captured, bounded and redacted
    requested_at INTEGER NOT NULL,
    captured_at  INTEGER,
    UNIQUE (incident, fingerprint, episode)
);
CREATE INDEX evidence_to_capture ON evidence (status) WHERE status != 'done';
CREATE INDEX evidence_by_incident ON evidence (incident);
"""
_COLUMNS = "incident, fingerprint, episode, reason, labels, status, requested_at"
_INSERT = f"INSERT OR IGNORE INTO evidence ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 'pending', ?)"
_READ = f"id, {_COLUMNS}, outcome, summary, content, captured_at"


def write(db: sqlite3.Connection, requests: Sequence[EvidenceRequest]) -> None:
    """Record requests (one per incident, alert and episode: a repeat adds nothing)."""
    if requests:
        db.executemany(
            _INSERT,
            [
                (r.incident, r.fingerprint, micros(r.episode), r.reason, labels_json(r.labels), micros(r.requested_at))
                for r in requests
            ],
        )


def release(db: sqlite3.Connection) -> int:
    """Requests left claimed (by an engine that stopped) are pending again; how many."""
    return db.execute("UPDATE evidence SET status = 'pending' WHERE status = 'claimed'").rowcount


def claim(db: sqlite3.Connection, limit: int) -> list[ClaimedEvidence]:
    """Claim the oldest pending requests."""
    rows = db.execute(
        f"UPDATE evidence SET status = 'claimed' WHERE id IN"
        f" (SELECT id FROM evidence WHERE status = 'pending' ORDER BY id LIMIT ?) RETURNING {_READ}",
        (limit,),
    ).fetchall()
    return sorted((ClaimedEvidence(row[0], _request(row)) for row in rows), key=lambda c: c.id)


def finish(db: sqlite3.Connection, result: EvidenceResult) -> None:
    """Store a capture's result on its request, and its line in the incident's timeline."""
    db.execute(
        "UPDATE evidence SET status = 'done', outcome = ?, summary = ?, content = ?, captured_at = ? WHERE id = ?",
        (result.outcome, result.summary, orjson.dumps(result.content).decode(), micros(result.captured_at), result.id),
    )
    db.execute(
        "INSERT INTO incident_events (incident, at, kind, text, actor, fingerprint) VALUES (?, ?, ?, ?, ?, ?)",
        (
            result.incident,
            micros(result.captured_at),
            EventKind.EVIDENCE.value,
            f"evidence {result.outcome}: {result.summary}",
            "receiver",
            result.fingerprint,
        ),
    )


def of_incident(db: sqlite3.Connection, incident: str) -> list[EvidenceRecord]:
    """An incident's evidence, in order of request."""
    rows = db.execute(f"SELECT {_READ} FROM evidence WHERE incident = ? ORDER BY id", (incident,))
    return [_record(row) for row in rows]


def _request(row: Sequence[Any]) -> EvidenceRequest:
    _, incident, fingerprint, episode, reason, labels, _, requested_at, *_ = row
    return EvidenceRequest(incident, fingerprint, time(episode), reason, orjson.loads(labels), time(requested_at))


def _record(row: Sequence[Any]) -> EvidenceRecord:
    status, outcome, summary, content, captured_at = row[6], *row[8:]
    return EvidenceRecord(
        _request(row),
        EvidenceStatus(status),
        outcome,
        summary,
        orjson.loads(content) if content is not None else None,
        opt_time(captured_at),
    )


def pending(db: sqlite3.Connection) -> int:
    """Requests not done yet."""
    n: int = db.execute("SELECT count(*) FROM evidence WHERE status != 'done'").fetchone()[0]
    return n
