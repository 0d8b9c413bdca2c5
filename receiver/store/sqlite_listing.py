"""The alerts listing in SQL: filtered and paged by the database, not by loading every alert.

A status and the equality matchers (``name="v"``, ``name!="v"``; a missing
label matches as the empty string) are SQL conditions over the labels'
canonical JSON. Regular-expression matchers are RE2's (anchored, linear in
the label's length, as everywhere else in the receiver), checked on the
reader thread (this runs there, never on the web event loop), so when a query
has one, the rows SQL
selects are streamed in order, a chunk at a time, their labels checked, and
the page cut after filtering; only the page's rows are decoded whole. The
count and the page come from one read transaction, so they agree.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from receiver.alerts.matchers import Matcher, match_all
from receiver.store import AlertPage, AlertQuery, StoredAlert
from receiver.store.sqlite_tables import ALERT_COLUMNS, state

CHUNK = 1000
"""Rows fetched at a time when a regular expression filters them."""
_ORDER = " ORDER BY last_changed DESC, fingerprint"
_LABELS = ALERT_COLUMNS.split(", ").index("labels")


def page(db: sqlite3.Connection, query: AlertQuery) -> AlertPage:
    """The alerts matching ``query``: how many, and its page (on the reader connection)."""
    where, args = _conditions(query)
    regexes = [m for m in query.matchers if m.pattern is not None]
    db.execute("BEGIN")  # one snapshot for the count and the page
    try:
        if regexes:
            return _filtered(db, where, args, regexes, query)
        total: int = db.execute(f"SELECT count(*) FROM alerts{where}", args).fetchone()[0]
        limit = -1 if query.limit is None else query.limit
        select = f"SELECT {ALERT_COLUMNS} FROM alerts{where}{_ORDER} LIMIT ? OFFSET ?"
        rows = db.execute(select, [*args, limit, query.offset])
        return AlertPage(total, [_stored(row) for row in rows])
    finally:
        db.execute("COMMIT")


def _conditions(query: AlertQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of the status and the equality matchers, and its arguments."""
    where: list[str] = []
    args: list[Any] = []
    if query.statuses is not None:
        where.append(f"status IN ({','.join('?' * len(query.statuses))})")
        args.extend(sorted(query.statuses))
    for matcher in query.matchers:
        if matcher.pattern is None:
            where.append(f"coalesce(json_extract(labels, ?), '') {'=' if matcher.op == '=' else '!='} ?")
            args.extend([f'$."{matcher.name}"', matcher.value])
    return (" WHERE " + " AND ".join(where) if where else ""), args


def _filtered(
    db: sqlite3.Connection, where: str, args: list[Any], regexes: Sequence[Matcher], query: AlertQuery
) -> AlertPage:
    """Stream the rows SQL selects, keep those the regexes match, and cut the page from them."""
    end = None if query.limit is None else query.offset + query.limit
    total = 0
    kept: list[StoredAlert] = []
    for row in _rows(db.execute(f"SELECT {ALERT_COLUMNS} FROM alerts{where}{_ORDER}", args)):
        if not match_all(regexes, orjson.loads(row[_LABELS])):
            continue
        if query.offset <= total and (end is None or total < end):
            kept.append(_stored(row))
        total += 1
    return AlertPage(total, kept)


def _rows(cursor: sqlite3.Cursor) -> Iterator[Sequence[Any]]:
    while chunk := cursor.fetchmany(CHUNK):
        yield from chunk


def _stored(row: Sequence[Any]) -> StoredAlert:
    return StoredAlert(state(row[:8]), json.loads(row[8]), json.loads(row[9]), row[10])
