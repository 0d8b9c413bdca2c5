"""The SQLite store's playbook runs: recorded with the news that triggers them, then carried to their end.

A run's row is inserted in the transaction that records the news (``INSERT
OR IGNORE`` on its identity: a repeated notification or a replayed inbox
adds nothing), and moved by the runner's typed operations (held for
approval, started, a step appended, finished, blocked) as the guardrails
judge it and its steps end. Rows leave this module only as the typed records
of ``receiver.playbooks.records``: the alert, plan and steps are JSON text
here and nowhere else. A circuit-breaker reset is a row of its own table.
Functions run on a connection handed to them, inside the caller's
transaction. Times are microseconds since the epoch.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from receiver.playbooks.executor import Outcome
from receiver.playbooks.plan import AlertFacts, Plan, PlannedStep
from receiver.playbooks.records import BreakerReset, RunRecord, RunSummary, StartedRun, StepRecord
from receiver.playbooks.runs import RunIntent, RunStatus
from receiver.store.sqlite_values import labels_json, micros, opt_time, time

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
RESET_SCHEMA = """
CREATE TABLE breaker_resets (
    id       INTEGER PRIMARY KEY,
    playbook TEXT NOT NULL,
    actor    TEXT NOT NULL,
    reason   TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX breaker_resets_by_playbook ON breaker_resets (playbook, at);
"""
_RESET_PREFIX = "circuit breaker reset by "
MOVE_RESETS = f"""{RESET_SCHEMA}
INSERT INTO breaker_resets (playbook, actor, reason, at)
SELECT playbook,
       CASE WHEN instr(rest, ': ') > 0 THEN substr(rest, 1, instr(rest, ': ') - 1) ELSE rest END,
       CASE WHEN instr(rest, ': ') > 0 THEN substr(rest, instr(rest, ': ') + 2) ELSE '' END,
       coalesce(finished_at, created_at)
FROM (
    SELECT id, playbook, finished_at, created_at,
           CASE WHEN reason LIKE '{_RESET_PREFIX}%' THEN substr(reason, {len(_RESET_PREFIX) + 1}) ELSE reason END
           AS rest
    FROM runs WHERE status = 'breaker_reset'
)
ORDER BY id;
DELETE FROM runs WHERE status = 'breaker_reset';
"""
"""The upgrade that moves the resets once stored as fake runs (status ``breaker_reset``, reason
"circuit breaker reset by ACTOR[: REASON]") to their own table; an actor with ": " in it was never
told apart from its reason, and is split at the first."""
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
    plan = [_planned_json(s) for s in intent.plan.steps]
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


_SUMMARY = "id, playbook, fingerprint, incident, status, reason, dry_run, created_at, started_at, finished_at"
_RECORD = f"{_SUMMARY}, episode, alert, plan, steps"


def pending(db: sqlite3.Connection, limit: int) -> list[RunRecord]:
    """Runs the guardrails have not judged yet, oldest first."""
    rows = db.execute(f"SELECT {_RECORD} FROM runs WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,))
    return [_record(row) for row in rows]


def history(db: sqlite3.Connection, since: datetime) -> list[StartedRun]:
    """Runs started since ``since``."""
    rows = db.execute(
        "SELECT id, playbook, plan, started_at, finished_at FROM runs WHERE started_at >= ?", (micros(since),)
    )
    return [
        StartedRun(playbook, _plan(playbook, plan), time(started), finished is not None, run_id)
        for run_id, playbook, plan, started, finished in rows
    ]


def render_step(db: sqlite3.Connection, run_id: int, step: PlannedStep) -> None:
    """A deferred step of a running run was rendered: its planned step (by name) becomes ``step``."""
    row = db.execute("SELECT plan FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return
    plan = [_planned_json(step) if s["name"] == step.name else s for s in orjson.loads(row[0])]
    db.execute("UPDATE runs SET plan = ? WHERE id = ?", (orjson.dumps(plan).decode(), run_id))


def failures_in_a_row(db: sqlite3.Connection, playbook: str, window: int) -> int:
    """How many of the playbook's last finished runs failed, counting back to its last success or reset."""
    statuses = db.execute(
        "SELECT status FROM runs WHERE playbook = ? AND status IN ('succeeded', 'failed')"
        " AND finished_at >= coalesce((SELECT max(at) FROM breaker_resets WHERE playbook = ?), 0)"
        " ORDER BY finished_at DESC, id DESC LIMIT ?",
        (playbook, playbook, window),
    )
    count = 0
    for (status,) in statuses:
        if status != RunStatus.FAILED.value:
            break
        count += 1
    return count


def await_approval(db: sqlite3.Connection, run_id: int, reason: str) -> None:
    """A pending run waits for a person."""
    db.execute("UPDATE runs SET status = 'awaiting_approval', reason = ? WHERE id = ?", (reason, run_id))


def start(db: sqlite3.Connection, run_id: int, at: datetime, dry_run: bool, reason: str) -> None:
    """A run starts executing."""
    db.execute(
        "UPDATE runs SET status = 'running', dry_run = ?, started_at = ?, reason = ? WHERE id = ?",
        (int(dry_run), micros(at), reason, run_id),
    )


def add_step(db: sqlite3.Connection, run_id: int, step: StepRecord) -> None:
    """Append an ended step to the run's steps."""
    db.execute(
        "UPDATE runs SET steps = json_insert(steps, '$[#]', json(?)) WHERE id = ?",
        (orjson.dumps(_step_json(step)).decode(), run_id),
    )


def finish(db: sqlite3.Connection, run_id: int, status: RunStatus, reason: str, at: datetime) -> None:
    """A run ends with a final status."""
    if not status.final:
        raise ValueError(f"a run cannot finish as {status.value}")
    db.execute(
        "UPDATE runs SET status = ?, reason = ?, finished_at = ? WHERE id = ?",
        (status.value, reason, micros(at), run_id),
    )


def interrupt(db: sqlite3.Connection, now: datetime) -> list[RunSummary]:
    """Mark runs that were running as interrupted (the engine stopped under them); those runs."""
    rows = db.execute(
        "UPDATE runs SET status = 'interrupted', reason = 'the engine stopped while it ran; not started again',"
        f" finished_at = ? WHERE status = 'running' RETURNING {_SUMMARY}",
        (micros(now),),
    ).fetchall()
    return [_summary(row) for row in rows]


def listing(
    db: sqlite3.Connection, status: RunStatus | None, playbook: str | None, before: int | None, limit: int
) -> list[RunSummary]:
    """Runs, newest first, filtered."""
    where: list[str] = ["1"]
    args: list[Any] = []
    for column, value in (("status", status.value if status else None), ("playbook", playbook)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if before is not None:
        where.append("id < ?")
        args.append(before)
    rows = db.execute(
        f"SELECT {_SUMMARY} FROM runs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*args, limit)
    )
    return [_summary(row) for row in rows]


def one(db: sqlite3.Connection, run_id: int) -> RunRecord | None:
    """One run with its alert, plan and steps."""
    row = db.execute(f"SELECT {_RECORD} FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else _record(row)


def expire_approvals(db: sqlite3.Connection, before: datetime, now: datetime, reason: str) -> list[RunSummary]:
    """Reject runs awaiting approval since before ``before``; those runs."""
    rows = db.execute(
        "UPDATE runs SET status = 'rejected', reason = ?, finished_at = ?"
        f" WHERE status = 'awaiting_approval' AND created_at < ? RETURNING {_SUMMARY}",
        (reason, micros(now), micros(before)),
    ).fetchall()
    return sorted((_summary(row) for row in rows), key=lambda run: run.id)


def reset_breaker(db: sqlite3.Connection, reset: BreakerReset) -> None:
    """Record that a person closed the playbook's circuit breaker (failures before it no longer count)."""
    db.execute(
        "INSERT INTO breaker_resets (playbook, actor, reason, at) VALUES (?, ?, ?, ?)",
        (reset.playbook, reset.actor, reset.reason, micros(reset.at)),
    )


def block(db: sqlite3.Connection, blocked: Sequence[tuple[int, str]], now: datetime) -> None:
    """Mark runs blocked, each with its reason, in one statement."""
    at = micros(now)
    db.executemany(
        "UPDATE runs SET status = 'blocked', reason = ?, finished_at = ? WHERE id = ?",
        [(reason, at, run_id) for run_id, reason in blocked],
    )


def _summary(row: Sequence[Any]) -> RunSummary:
    run_id, playbook, fingerprint, incident, status, reason, dry_run, created, started, finished = row[:10]
    return RunSummary(
        id=run_id,
        playbook=playbook,
        fingerprint=fingerprint,
        incident=incident,
        status=RunStatus(status),
        reason=reason,
        dry_run=bool(dry_run),
        created_at=time(created),
        started_at=opt_time(started),
        finished_at=opt_time(finished),
    )


def _record(row: Sequence[Any]) -> RunRecord:
    s = _summary(row)
    episode, alert, plan, steps = row[10:]
    return RunRecord(
        *(s.id, s.playbook, s.fingerprint, s.incident, s.status, s.reason, s.dry_run),
        *(s.created_at, s.started_at, s.finished_at),
        episode=time(episode),
        alert=_alert(alert),
        plan=_plan(s.playbook, plan),
        steps=tuple(_step(value) for value in orjson.loads(steps)),
    )


def _alert(text: str) -> AlertFacts:
    facts = orjson.loads(text)
    return AlertFacts(
        facts["fingerprint"],
        facts["status"],
        facts["labels"],
        facts["annotations"],
        datetime.fromisoformat(facts["startsAt"]),
    )


def _plan(playbook: str, text: str) -> Plan:
    steps = (
        PlannedStep(s["name"], s["action"], s["inputs"], s["when"], s["refused"], s.get("deferred"), s.get("source"))
        for s in orjson.loads(text)
    )
    return Plan(playbook, tuple(steps))


def _planned_json(s: PlannedStep) -> dict[str, Any]:
    """A planned step as kept in the run's plan (``deferred`` and ``source`` only for a deferred one)."""
    out: dict[str, Any] = {
        "name": s.name,
        "action": s.action,
        "inputs": dict(s.inputs),
        "when": s.when,
        "refused": s.refused,
    }
    if s.deferred is not None:
        out |= {"deferred": s.deferred, "source": s.source}
    return out


def _step(value: dict[str, Any]) -> StepRecord:
    return StepRecord(**{**value, "outcome": Outcome(value["outcome"]), "resolved": tuple(value.get("resolved", ()))})


def _step_json(step: StepRecord) -> dict[str, Any]:
    """The step as stored: its fields by their names (``dry_run``: the storage's own keys, not the API's)."""
    return {**dataclasses.asdict(step), "outcome": step.outcome.value}
