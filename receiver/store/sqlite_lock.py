"""The SQLite backend's locks: one web process per database, one engine per database.

The serve lock is an exclusive ``flock`` on ``<database>.lock``, taken by
``receiver serve`` before it listens and holding its pid: a second daemon on
the same data directory would accept into the inbox that only the first
one's engine processes, and that engine is woken by the first one's accepts
only; so the second refuses to start, naming the pid.

The engine lock: which engine may write is a property of the backend, not
of the engine: with SQLite it is an exclusive ``flock`` on ``<database>.engine.lock`` beside the
database (released by the kernel when its holder exits, even on SIGKILL);
a PostgreSQL backend will hold an advisory lock (or a Kubernetes Lease)
instead. The cursor check inside every processing transaction remains the
second line of defence.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from receiver.store import InUse, StoreError

log = logging.getLogger(__name__)
POLL_SECONDS = 0.1


def serve_lock_path(database: Path) -> Path:
    """The file whose lock the web process serving the database holds, with its pid."""
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def serve_lock(database: Path) -> Iterator[None]:
    """Hold the database's serve lock, or raise ``InUse`` naming its holder; released on exit or death."""
    path = serve_lock_path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise StoreError(f"cannot take the lock of data directory {path.parent}: {err.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InUse(_in_use(path, os.pread(fd, 32, 0))) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _in_use(path: Path, holder: bytes) -> str:
    pid = holder.decode(errors="replace").strip()
    who = f"pid {pid}" if pid.isdigit() else "another process"
    return (
        f"data directory {path.parent} in use by {who} (it holds {path}): stop that daemon first,"
        " or give this one another data directory"
    )


def lock_path(database: Path) -> Path:
    """The file whose lock the working engine holds."""
    return database.with_name(database.name + ".engine.lock")


@contextlib.asynccontextmanager
async def engine_lock(database: Path) -> AsyncIterator[None]:
    """Hold the database's engine lock (waiting for its holder to let go); released on exit or death."""
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    log.info("waiting for the previous engine to finish", extra={"lock": str(path)})
                    waiting = True
                await asyncio.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(fd)
