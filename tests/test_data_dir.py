"""The data directory as an operator may leave it: a database file deleted between runs, a second daemon on it.

Sequence numbers never go backwards: an inbox database deleted (or put back
from an older copy) continues after the state's cursor, so what it accepts is
processed; a state database deleted replays what the inbox retained. And one
web process at a time serves a store: the backend's serve lock refuses the
second, naming the pid that holds it, and is released when its holder dies.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from receiver import config
from receiver.alerts.dedup import Outcome
from receiver.alerts.wire import decode
from receiver.store import InUse, backends
from receiver.store.sqlite import SQLiteStore, inbox_path
from tests.conftest import T0
from tests.payloads import alert, body
from tests.processing import apply


@asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(path, role="web")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def process_all(store: SQLiteStore) -> list[Outcome]:
    """Process what the engine would read after the cursor; the outcomes of its alerts."""
    entries = [(e, decode(e.body)) for e in await store.inbox(after=await store.cursor(), limit=100)]
    return [d.outcome for p in await apply(store, entries) for d in p.decisions]


def delete(database: Path) -> None:
    """Delete a database file with its write-ahead log, as an operator's ``rm`` would."""
    for path in database.parent.glob(database.name + "*"):
        path.unlink()


async def test_a_deleted_inbox_numbers_new_notifications_after_the_cursor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "receiver.db"
    async with opened(path) as store:
        for name in ("A", "B", "C"):
            await store.accept(body(alert(name)), T0)
        assert await process_all(store) == [Outcome.FIRED] * 3
        assert await store.cursor() == 3
    delete(inbox_path(path))
    with caplog.at_level(logging.ERROR, logger="receiver.store.sqlite"):
        async with opened(path) as store:
            seq = await store.accept(body(alert("AfterTheLoss")), T0)
            assert seq == 4, "a seq at or below the cursor counts as processed and is never processed"
            assert await store.backlog() == 1
            assert await process_all(store) == [Outcome.FIRED]
            assert await store.cursor() == 4
            assert "AfterTheLoss" in {a.labels["alertname"] for a in await store.list_alerts()}
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "deleted or replaced" in record.getMessage()
    assert (record.__dict__["cursor"], record.__dict__["inbox_last_seq"]) == (3, 0)


async def test_an_inbox_pruned_empty_keeps_its_numbering_and_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "receiver.db"
    async with opened(path) as store:
        await store.accept(body(alert("A")), T0)
        await process_all(store)
        assert await store.prune_inbox(before=T0.replace(year=T0.year + 1)) == 1
    with caplog.at_level(logging.WARNING, logger="receiver.store.sqlite"):
        async with opened(path) as store:
            assert await store.accept(body(alert("B")), T0) == 2
    assert not caplog.records


async def test_an_older_copy_of_the_inbox_put_back_continues_after_the_cursor(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    async with opened(path) as store:
        await store.accept(body(alert("A")), T0)
        await store.checkpoint()
    backup = inbox_path(path).read_bytes()
    async with opened(path) as store:
        for name in ("B", "C"):
            await store.accept(body(alert(name)), T0)
        await process_all(store)
    delete(inbox_path(path))
    inbox_path(path).write_bytes(backup)  # holds seq 1 only; the cursor is at 3
    async with opened(path) as store:
        assert await store.accept(body(alert("D")), T0) == 4
        assert await process_all(store) == [Outcome.FIRED]


async def test_a_deleted_state_database_replays_what_the_inbox_retained(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    async with opened(path) as store:
        for name in ("A", "B"):
            await store.accept(body(alert(name)), T0)
        await process_all(store)
    delete(path)
    async with opened(path) as store:
        assert (await store.cursor(), await store.backlog()) == (0, 2)
        assert await process_all(store) == [Outcome.FIRED] * 2
        assert await store.accept(body(alert("C")), T0) == 3


def test_a_second_serve_lock_on_one_data_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    settings = config.load(None, {}, {"data_dir": str(tmp_path / "data")})
    with backends.serve_lock(settings):
        expected = f"data directory {tmp_path / 'data'} in use by pid {os.getpid()}"
        with pytest.raises(InUse, match=re.escape(expected)), backends.serve_lock(settings):
            pytest.fail("two holders of one serve lock")
    with backends.serve_lock(settings):  # let go on exit
        pass


def test_the_serve_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    settings = config.load(None, {}, {"data_dir": str(tmp_path)})
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"  # "" if the child failed
            with pytest.raises(InUse, match=f"in use by pid {holder.pid}"), backends.serve_lock(settings):
                pytest.fail("the holder's lock was not held")
            holder.kill()  # SIGKILL: nothing of the holder runs again
            holder.wait(10)
            with backends.serve_lock(settings):
                pass
        finally:
            holder.kill()


HOLD = """
import sys
from pathlib import Path
from receiver import config
from receiver.store import backends
with backends.serve_lock(config.load(None, {}, {"data_dir": sys.argv[1]})):
    print("held", flush=True)
    sys.stdin.read()
"""
