"""The SQLite store's dead man's switch: the watchdog's last two arrivals, one row.

Written in the transaction of the batch whose notification carried the
arrival, read with the engine's working set when it starts: the switch's
deadline lives here, not in the engine's memory. Functions run on a
connection handed to them, inside the caller's transaction. Times are
microseconds since the epoch.
"""

from __future__ import annotations

import sqlite3

from receiver.incidents.watchdog import Sightings
from receiver.store.sqlite_values import micros, opt_micros, opt_time

SCHEMA = """
CREATE TABLE watchdog (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    previous INTEGER,          -- the arrival before the last (NULL: seen once)
    last     INTEGER NOT NULL  -- the last arrival
);
"""


def write(db: sqlite3.Connection, sightings: Sightings | None) -> None:
    """Keep the watchdog's arrivals (None: no new one, nothing to write)."""
    if sightings is None or sightings.last is None:
        return
    db.execute(
        "INSERT INTO watchdog (id, previous, last) VALUES (1, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET previous = excluded.previous, last = excluded.last",
        (opt_micros(sightings.previous), micros(sightings.last)),
    )


def load(db: sqlite3.Connection) -> Sightings:
    """The watchdog's arrivals as last written (none before the first)."""
    row = db.execute("SELECT previous, last FROM watchdog").fetchone()
    return Sightings() if row is None else Sightings(opt_time(row[0]), opt_time(row[1]))
