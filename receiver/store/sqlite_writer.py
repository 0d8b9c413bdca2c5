"""A SQLite writer thread: one connection, inbox appends committed together.

SQLite takes one writer per database, so one thread owns its write connection.
Inbox appends that are waiting when the thread comes round are merged into a
single transaction (group commit): one fsync serves many webhook requests,
and the thread never waits for the event loop between commits. Appends go
before other writes, since a webhook request waits on each; another write
that has waited ``MAX_DEFER_SECONDS`` goes first (a readiness heartbeat, an
inbox prune), so nothing starves under load. Other writes run in arrival
order. Each job's future is settled on its own loop, only after COMMIT
returned.

The thread also checkpoints its write-ahead log when asked to
(``request_checkpoint``) or every ``checkpoint_seconds``, right after
settling a write's futures: the answers are out before the checkpoint
starts, and since this thread is the only writer, the checkpoint catches up
with the whole log and the next write starts the log over. A log that is
never started over grows without end, and every commit then extends the
file: in one benchmark the logs reached 0.8 GB, and flushing them stalled
every other fsync on the disk.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from receiver.store import StoreError
from receiver.store import sqlite_tables as tables

T = TypeVar("T")
log = logging.getLogger(__name__)
OnCommit = Callable[[float, int], None]
"""Told each inbox commit's duration in seconds and how many webhook bodies it held."""
MAX_DEFER_SECONDS = 0.02


@dataclass
class _Job:
    """A write that runs alone: ``work(db)`` inside its own transaction or not, as it wishes."""

    work: Callable[[sqlite3.Connection], Any]
    done: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class _AcceptJob:
    """A webhook body to append to the inbox; mergeable with its neighbours."""

    body: bytes
    received_at: datetime
    done: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop


class _Stop:
    """Put last on the queue: the thread ends once it reaches it."""


_STOP = _Stop()


class Writer:
    """Owns the write connection and the thread that uses it."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_batch: int,
        on_commit: OnCommit,
        checkpoint_seconds: float | None,
    ) -> None:
        self._name = name
        self._connect = connect
        self._max_batch = max_batch
        self._checkpoint_seconds = checkpoint_seconds
        self._checkpoint_requested = threading.Event()
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[_Job | _AcceptJob | _Stop] = queue.SimpleQueue()
        # Taken off the queue, not written yet; touched by the writer thread only.
        self._accepts: collections.deque[_AcceptJob] = collections.deque()
        self._others: collections.deque[_Job | _Stop] = collections.deque()
        self._thread: threading.Thread | None = None
        self._running = False

    async def start(self) -> None:
        """Start the thread and wait until the connection is open (or failed to open)."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        name = f"store-writer {self._name}"
        self._thread = threading.Thread(target=self._main, args=(loop, opened), name=name, daemon=True)
        self._thread.start()
        self._running = True
        try:
            await opened
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Finish the queued jobs, close the connection and end the thread."""
        thread, self._thread = self._thread, None
        self._running = False
        if thread is not None:
            self._put(_STOP)
            await asyncio.to_thread(thread.join)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(db)`` on the writer thread, in order with everything else."""
        loop = self._loop_if_running()
        done: asyncio.Future[T] = loop.create_future()
        self._put(_Job(work, done, loop))
        return await done

    async def accept(self, body: bytes, received_at: datetime) -> int:
        """Append ``body`` to the inbox, committed with whatever else is waiting; its seq."""
        loop = self._loop_if_running()
        done: asyncio.Future[int] = loop.create_future()
        self._put(_AcceptJob(body, received_at, done, loop))
        return await done

    def _loop_if_running(self) -> asyncio.AbstractEventLoop:
        if not self._running:
            raise StoreError("the store is closed")
        return asyncio.get_running_loop()

    def _main(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None]) -> None:
        try:
            db = self._connect()
        except BaseException as err:  # reported to start(), which raises it
            _settle_on(loop, opened, exception=_wrap(self._name, err) if isinstance(err, Exception) else err)
            return
        _settle_on(loop, opened)
        try:
            self._serve(db)
        finally:
            db.close()

    def request_checkpoint(self) -> None:
        """Have the thread checkpoint after its next write (from any thread)."""
        self._checkpoint_requested.set()

    def _put(self, job: _Job | _AcceptJob | _Stop) -> None:
        self._queue.put(job)  # C code: no lock taken in Python, and it wakes the thread only if it sleeps

    def _serve(self, db: sqlite3.Connection) -> None:
        last_checkpoint = time.monotonic()
        while True:
            work = self._next()
            if isinstance(work, _Stop):
                _checkpoint(db, self._name)
                return
            if isinstance(work, _Job):
                self._run_one(db, work)
            else:
                self._accept_group(db, work)
            due = (
                self._checkpoint_seconds is not None and time.monotonic() - last_checkpoint >= self._checkpoint_seconds
            )
            if due or self._checkpoint_requested.is_set():
                self._checkpoint_requested.clear()
                _checkpoint(db, self._name)
                last_checkpoint = time.monotonic()

    def _next(self) -> list[_AcceptJob] | _Job | _Stop:
        """The waiting appends (up to max_batch), unless another write is overdue."""
        if not self._accepts and not self._others:
            self._sort(self._queue.get())  # sleeps until there is work
        while True:  # and whatever else is queued already
            try:
                self._sort(self._queue.get_nowait())
            except queue.Empty:
                break
        if self._accepts and not self._other_overdue():
            count = min(len(self._accepts), self._max_batch)
            return [self._accepts.popleft() for _ in range(count)]
        return self._others.popleft()

    def _sort(self, job: _Job | _AcceptJob | _Stop) -> None:
        if isinstance(job, _AcceptJob):
            self._accepts.append(job)
        else:
            self._others.append(job)

    def _other_overdue(self) -> bool:
        oldest = self._others[0] if self._others else None
        return isinstance(oldest, _Job) and time.monotonic() - oldest.queued_at > MAX_DEFER_SECONDS

    def _run_one(self, db: sqlite3.Connection, job: _Job) -> None:
        try:
            result = job.work(db)
        except Exception as err:
            _settle_on(job.loop, job.done, exception=_wrap(self._name, err))
        else:
            _settle_on(job.loop, job.done, result=result)

    def _accept_group(self, db: sqlite3.Connection, group: list[_AcceptJob]) -> None:
        started = time.perf_counter()
        try:
            seqs = tables.append_inbox(db, [(j.body, j.received_at) for j in group])
        except Exception as err:
            if not isinstance(err, sqlite3.Error):
                log.error("inbox append failed", exc_info=True)
            _settle_all(group, [(None, _wrap(self._name, err))] * len(group))
            return
        self._on_commit(time.perf_counter() - started, len(group))
        _settle_all(group, [(seq, None) for seq in seqs])


def _checkpoint(db: sqlite3.Connection, name: str) -> None:
    """Copy the write-ahead log into the database, so that the next write can start it over."""
    try:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as err:
        log.warning("checkpoint failed", extra={"database": name, "error": str(err)})


def _wrap(name: str, err: Exception) -> Exception:
    if isinstance(err, sqlite3.Error):
        wrapped = StoreError(f"{name}: {err}")
        wrapped.__cause__ = err
        return wrapped
    return err


def _settle_on(
    loop: asyncio.AbstractEventLoop,
    done: asyncio.Future[Any],
    *,
    result: Any = None,
    exception: BaseException | None = None,
) -> None:
    """From the writer thread: have ``done`` settled on ``loop``."""
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(lambda: _settle(done, result=result, exception=exception))


def _settle_all(group: list[_AcceptJob], outcomes: list[tuple[Any, BaseException | None]]) -> None:
    """Settle a whole group with one wake-up of each loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for job, (result, exception) in zip(group, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append((job.done, result, exception))
    for loop, settlements in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_many, settlements)


def _settle_many(settlements: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for done, result, exception in settlements:
        _settle(done, result=result, exception=exception)


def _settle(done: asyncio.Future[Any], *, result: Any, exception: BaseException | None) -> None:
    """On the future's own loop: set it, unless whoever awaited it went away."""
    if done.done():  # a request that went away; its commit stands all the same
        return
    if exception is not None:
        done.set_exception(exception)
    else:
        done.set_result(result)
