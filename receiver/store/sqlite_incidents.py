"""The SQLite store's incident tables: incidents, their members, their timelines.

Written in the transaction that records the alert news they come from
(``write``, with the values the engine's book decided), or alone for a tick
or a person's action; read back when the engine starts (``load``), and by
the API. A member is identified by its incident and fingerprint; its row id
(order of joining) stays in here (``MemberIds``). Like ``sqlite_tables``, functions here run
on a connection handed to them, inside the caller's transaction. Times are
microseconds since the epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from receiver.incidents.book import Changes, Incident, Member
from receiver.incidents.lifecycle import EventKind, IncidentStatus, Lifecycle, TimelineEvent
from receiver.incidents.severity import Classification, Severity
from receiver.store import IncidentQuery, WorkingSet
from receiver.store.sqlite_values import micros, opt_micros, opt_time, time

SCHEMA = """
CREATE TABLE incidents (
    seq             INTEGER PRIMARY KEY,  -- order of opening: listings are newest first
    id              TEXT NOT NULL UNIQUE, -- INC-20261122-0001
    scope           TEXT NOT NULL,
    title           TEXT NOT NULL,
    status          TEXT NOT NULL,
    severity        TEXT,
    reasons         TEXT NOT NULL,        -- JSON array: why it has its severity
    cascade         INTEGER NOT NULL,
    services        TEXT NOT NULL,        -- JSON array, sorted
    members         INTEGER NOT NULL,
    firing          INTEGER NOT NULL,
    detected_at     INTEGER NOT NULL,
    acknowledged_at INTEGER,
    mitigated_at    INTEGER,
    resolved_at     INTEGER,
    last_activity   INTEGER NOT NULL
);
CREATE INDEX incidents_not_resolved ON incidents (status) WHERE status != 'resolved';
CREATE TABLE incident_members (
    id          INTEGER PRIMARY KEY,  -- in order of joining: a new member is appended, not put in a random place
    incident    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    role        TEXT NOT NULL,  -- alert or symptom
    root        TEXT,           -- a symptom's root-cause fingerprint
    firing      INTEGER NOT NULL,
    severity    TEXT NOT NULL,
    reasons     TEXT NOT NULL,
    labels      TEXT NOT NULL,
    fired_at    INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX incident_members_by_incident ON incident_members (incident);
CREATE TABLE incident_events (
    seq         INTEGER PRIMARY KEY,
    incident    TEXT NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    fingerprint TEXT
);
CREATE INDEX incident_events_by_incident ON incident_events (incident, seq);
"""
_INCIDENT_COLUMNS = (
    "seq, id, scope, title, status, severity, reasons, cascade, services, members, firing, detected_at,"
    " acknowledged_at, mitigated_at, resolved_at, last_activity"
)
_MEMBER_COLUMNS = "id, incident, fingerprint, role, root, firing, severity, reasons, labels, fired_at, resolved_at"
_EVENT_COLUMNS = "incident, at, kind, text, actor, fingerprint"


def _insert(table: str, columns: str, verb: str = "INSERT") -> str:
    return f"{verb} INTO {table} ({columns}) VALUES ({', '.join('?' * len(columns.split(', ')))})"


_WRITE_INCIDENT = _insert("incidents", _INCIDENT_COLUMNS, "INSERT OR REPLACE")
_WRITE_MEMBER = _insert("incident_members", _MEMBER_COLUMNS, "INSERT OR REPLACE")
_DELETE_MEMBER = "DELETE FROM incident_members WHERE id = ?"


class MemberIds:
    """Which row holds each member of the incidents written lately: (incident, fingerprint) -> id.

    Kept by the state's one writer, an incident's members read (by the incident's index) the first time
    one of them is written, and forgotten once it is written resolved. A unique index on (incident,
    fingerprint) did the same job in SQL, but put every new member at a random place of that index: with
    100,000 open alerts processing cost a fifth more. All of it is forgotten whenever the table holds rows
    this writer did not give, and after a failed transaction.
    """

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, int]] = {}
        self._last = -1

    def current(self, db: sqlite3.Connection) -> MemberIds:
        """These ids, forgotten if the table's last id is not the last one given here."""
        last = db.execute("SELECT coalesce(max(id), 0) FROM incident_members").fetchone()[0]
        if last != self._last:
            self._rows.clear()
            self._last = last
        return self

    def of(self, db: sqlite3.Connection, incident: str) -> dict[str, int]:
        """fingerprint -> row of an incident's members (the later row, should an old database hold two)."""
        rows = self._rows.get(incident)
        if rows is None:
            query = "SELECT fingerprint, id FROM incident_members WHERE incident = ? ORDER BY id"
            rows = self._rows[incident] = dict(db.execute(query, (incident,)))
        return rows

    def give(self) -> int:
        """The next row id: a new member goes after every other."""
        self._last += 1
        return self._last

    def forget(self, incident: str | None = None) -> None:
        """Forget one incident's rows (resolved), or everything (a failed transaction)."""
        if incident is None:
            self._rows.clear()
            self._last = -1
        else:
            self._rows.pop(incident, None)


_INSERT_EVENT = _insert("incident_events", _EVENT_COLUMNS)


def write(db: sqlite3.Connection, changes: Changes, ids: MemberIds) -> None:
    """Write what changed: incident rows, members, timeline events (``ids``: forget them if this fails)."""
    if not changes:
        return
    db.executemany(_WRITE_INCIDENT, [_incident_row(i) for i in changes.incidents.values()])
    ids = ids.current(db)
    kept: list[list[Any]] = []
    gone: list[tuple[int]] = []
    for (incident, fingerprint), member in changes.members.items():
        rows = ids.of(db, incident)
        if member is not None:
            row = rows.get(fingerprint)
            if row is None:
                row = rows[fingerprint] = ids.give()
            kept.append(_member_row(row, incident, member))
        elif fingerprint in rows:
            gone.append((rows.pop(fingerprint),))
    if gone:
        db.executemany(_DELETE_MEMBER, gone)
    if kept:
        db.executemany(_WRITE_MEMBER, kept)
    for written in changes.incidents.values():
        if written.status is IncidentStatus.RESOLVED:
            ids.forget(written.id)
    if changes.events:
        db.executemany(
            _INSERT_EVENT,
            [(i, micros(e.at), e.kind.value, e.text, e.actor, fp) for i, e, fp in changes.events],
        )


def load(db: sqlite3.Connection, since: datetime) -> WorkingSet:
    """The incidents not resolved, or resolved since ``since``, with their members, and the counters."""
    numbers = dict(
        db.execute("SELECT substr(id, 5, 8), max(CAST(substr(id, 14) AS INTEGER)) FROM incidents GROUP BY 1")
    )
    last_seq = db.execute("SELECT coalesce(max(seq), 0) FROM incidents").fetchone()[0]
    rows = db.execute(
        f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE status != 'resolved'"
        f" UNION ALL SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE status = 'resolved' AND resolved_at >= ?",
        (micros(since),),
    ).fetchall()
    return WorkingSet([_with_members(db, _incident(row)) for row in sorted(rows)], numbers, last_seq)


def one(db: sqlite3.Connection, id: str) -> Incident | None:
    """One incident with its members, or None."""
    row = db.execute(f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (id,)).fetchone()
    return None if row is None else _with_members(db, _incident(row))


def listing(db: sqlite3.Connection, query: IncidentQuery) -> list[Incident]:
    """Incidents matching ``query``, newest first, without their members."""
    where: list[str] = ["1"]
    args: list[str | int] = []
    if query.statuses:
        where.append(f"status IN ({','.join('?' * len(query.statuses))})")
        args.extend(sorted(query.statuses))
    if query.severities:
        where.append(f"severity IN ({','.join('?' * len(query.severities))})")
        args.extend(sorted(str(s) for s in query.severities))
    if query.service is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(services) WHERE value = ?)")
        args.append(query.service)
    if query.before is not None:
        where.append("seq < ?")
        args.append(query.before)
    sql = f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
    return [_incident(row) for row in db.execute(sql, [*args, query.limit])]


def timeline(db: sqlite3.Connection, id: str, limit: int) -> list[TimelineEvent]:
    """The last ``limit`` events of an incident's timeline, oldest first."""
    rows = db.execute(
        "SELECT at, kind, text, actor, fingerprint FROM incident_events WHERE incident = ? ORDER BY seq DESC LIMIT ?",
        (id, limit),
    ).fetchall()
    return [TimelineEvent(time(at), EventKind(kind), text, actor, fp) for at, kind, text, actor, fp in reversed(rows)]


def count_open(db: sqlite3.Connection) -> dict[Severity, int]:
    """Incidents not resolved, by severity (unclassified ones are not counted)."""
    counts = {s: 0 for s in Severity}
    rows = db.execute("SELECT severity, count(*) FROM incidents WHERE status != 'resolved' GROUP BY severity")
    counts.update({Severity[s]: n for s, n in rows if s is not None})
    return counts


def _incident_row(i: Incident) -> list[Any]:
    life = i.lifecycle
    c = i.classification
    return [
        i.seq,
        i.id,
        i.scope,
        i.title,
        life.status.value,
        str(c.severity) if c else None,
        orjson.dumps(c.reasons if c else []).decode(),
        int(i.cascade),
        orjson.dumps(sorted(i.services)).decode(),
        len(i.members),
        i.firing,
        micros(life.detected_at),
        opt_micros(life.acknowledged_at),
        opt_micros(life.mitigated_at),
        opt_micros(life.resolved_at),
        micros(i.last_activity),
    ]


def _member_row(row: int, incident: str, m: Member) -> list[Any]:
    return [
        row,
        incident,
        m.fingerprint,
        m.role,
        m.root,
        int(m.firing),
        str(m.classification.severity),
        orjson.dumps(m.classification.reasons).decode(),
        m.labels_json,
        micros(m.fired_at),
        opt_micros(m.resolved_at),
    ]


def _incident(row: Sequence[Any]) -> Incident:
    seq, id, scope, title, status, severity, reasons, cascade, services, members, firing, *times = row
    detected, acked, mitigated, resolved, last = times
    return Incident(
        id=id,
        seq=seq,
        scope=scope,
        title=title,
        lifecycle=Lifecycle(
            IncidentStatus(status), time(detected), opt_time(acked), opt_time(mitigated), opt_time(resolved)
        ),
        last_activity=time(last),
        classification=Classification(Severity[severity], tuple(orjson.loads(reasons))) if severity else None,
        cascade=bool(cascade),
        services=set(orjson.loads(services)),
        firing=firing,
        stored_members=members,
    )


def _with_members(db: sqlite3.Connection, incident: Incident) -> Incident:
    rows = db.execute(f"SELECT {_MEMBER_COLUMNS} FROM incident_members WHERE incident = ? ORDER BY id", (incident.id,))
    for _, _, fp, role, root, firing, severity, reasons, labels, fired_at, resolved_at in rows:
        classification = Classification(Severity[severity], tuple(orjson.loads(reasons)))
        member = Member(fp, labels, role, root, bool(firing), classification, time(fired_at), opt_time(resolved_at))
        incident.members[fp] = member
    return incident
