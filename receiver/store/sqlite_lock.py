"""The SQLite backend's engine lock: one engine per database, the next waits for the last to finish.

Which engine may write is a property of the backend, not of the engine: with
SQLite it is an exclusive ``flock`` on ``<database>.engine.lock`` beside the
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
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger(__name__)
POLL_SECONDS = 0.1


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
