"""The embedded SQLite store: WAL mode, one writer thread, one reader thread.

Writes go to the writer thread (``sqlite_writer``), which commits waiting
accepts together; reads use their own connection on their own thread, so a
large listing never stalls ingestion (WAL lets readers and the writer
overlap). The SQL itself lives in ``sqlite_tables``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

from receiver.alertmanager import Notification
from receiver.dedup import Status
from receiver.store import AlertEvent, Decide, InboxEntry, Processed, StoredAlert, StoreError
from receiver.store import sqlite_tables as tables
from receiver.store.cache import StateCache
from receiver.store.sqlite_writer import OnCommit, Writer

T = TypeVar("T")


def _ignore_commit(seconds: float, size: int) -> None:
    return None


class SQLiteStore:
    """A ``Store`` in one SQLite file; ``await open()`` before use, ``close()`` after."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["full", "normal"] = "full",
        busy_timeout: timedelta = timedelta(seconds=5),
        max_batch: int = 512,
        cache_size: int = 200_000,
        on_commit: OnCommit = _ignore_commit,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout / timedelta(milliseconds=1))
        self._cache = StateCache(cache_size)
        self._writer = Writer(str(path), self._connect_writer, max_batch=max_batch, on_commit=on_commit)
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open (creating and migrating when needed) the database."""
        try:
            await self._writer.start()
            self._reader = await self._on_reader(self._connect)
        except BaseException:
            await self.close()
            raise

    async def accept(self, body: bytes, received_at: datetime) -> int:
        return await self._writer.accept(body, received_at)

    async def inbox(self, after: int, limit: int) -> list[InboxEntry]:
        return await self._read(lambda db: tables.inbox(db, after, limit))

    async def cursor(self) -> int:
        return await self._read(tables.cursor)

    async def backlog(self) -> int:
        return await self._read(tables.backlog)

    async def apply(self, entries: Sequence[tuple[InboxEntry, Notification | None]], decide: Decide) -> list[Processed]:
        def work(db: sqlite3.Connection) -> list[Processed]:
            # Derived state needs no fsync of its own: the inbox it comes from was synced when
            # accepted, and the cursor moves in the same transaction, so a power loss can only
            # roll both back together, and the entries are processed again.
            db.execute("PRAGMA synchronous = NORMAL")
            try:
                processed, states = tables.transaction(db, lambda db: tables.apply(db, entries, decide, self._cache))
            finally:
                db.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            self._cache.put_all(states)  # committed: the cache may know it now (it lives on this thread)
            return processed

        return await self._write(work)

    async def prune_inbox(self, before: datetime) -> int:
        return await self._write(
            lambda db: tables.transaction(db, lambda db: tables.prune_inbox(db, tables.micros(before)))
        )

    async def list_alerts(self, statuses: frozenset[Status] | None = None) -> list[StoredAlert]:
        return await self._read(lambda db: tables.list_alerts(db, statuses))

    async def count_alerts(self) -> Mapping[Status, int]:
        return await self._read(tables.count_alerts)

    async def expire(self, cutoff: datetime, now: datetime) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            expired = tables.transaction(db, lambda db: tables.expire(db, tables.micros(cutoff), tables.micros(now)))
            self._cache.discard_all(expired)  # the cache lives on this thread
            return expired

        return await self._write(work)

    async def events(self, after: int = 0, limit: int = 1000) -> list[AlertEvent]:
        return await self._read(lambda db: tables.events(db, after, limit))

    async def ping(self) -> None:
        now = datetime.now(UTC)
        await self._write(lambda db: tables.transaction(db, lambda db: tables.heartbeat(db, now)))

    async def close(self) -> None:
        await self._writer.stop()
        if self._reader is not None:
            await self._on_reader(self._reader.close)
            self._reader = None
        self._reader_thread.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        return db

    def _connect_writer(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise StoreError(f"{self._path}: cannot switch the database to WAL mode")
            db.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            db.execute("PRAGMA wal_autocheckpoint = 10000")  # fewer, larger checkpoints
            tables.migrate(db)
        except sqlite3.Error as err:
            db.close()
            raise StoreError(f"{self._path}: {err}") from err
        except BaseException:
            db.close()
            raise
        return db

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._writer.run(work)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._reader
        if db is None:
            raise StoreError("the store is closed")
        return await self._on_reader(lambda: work(db))

    async def _on_reader(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader_thread, fn)
        except sqlite3.Error as err:
            raise StoreError(f"{self._path}: {err}") from err
