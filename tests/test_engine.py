"""The engine process: processes the inbox beside the web process, restarts, exclusive, never orphaned."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from receiver.alerts.dedup import Status
from receiver.alerts.wire import validate
from receiver.app import create_app
from receiver.clock import FixedClock, OffsetClock, UndescribableClock, describe, parse, utc_now
from receiver.config import Settings
from receiver.engine import link
from receiver.engine.builder import build
from receiver.engine.process import (
    COMMAND,
    LINGER_SECONDS,
    EngineProcess,
    EngineUnavailable,
    settings_frame,
)
from receiver.incidents.book import UnknownIncident
from receiver.incidents.lifecycle import InvalidTransition
from receiver.metrics import Metrics
from receiver.playbooks.runs import RunStatus
from receiver.store import InboxEntry, IncidentQuery
from receiver.store.sqlite import SQLiteStore
from receiver.store.sqlite_lock import lock_path
from receiver.timer import VirtualTimer
from tests.e2e.harness import eventually
from tests.payloads import alert, body

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
CLOCK = ("--clock", f"fixed:{NOW.isoformat()}")
"""The engines of these tests live at NOW, the time their inbox entries are received."""
STAND_IN = """
import os, struct, sys
def recv():
    header = sys.stdin.buffer.read(4)
    return sys.stdin.buffer.read(struct.unpack('>I', header)[0]) if len(header) == 4 else None
def send(payload):
    sys.stdout.buffer.write(struct.pack('>I', len(payload)) + payload)
    sys.stdout.buffer.flush()
"""
"""The start of a stand-in engine's script: it reads and sends frames as the engine does."""


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(engine={"nice": 0})


@pytest.fixture
async def web_store(settings: Settings) -> AsyncIterator[SQLiteStore]:
    """The store as the web process opens it: it appends to the inbox, the engine does the rest."""
    store = SQLiteStore(settings.database_path, role="web")
    await store.open()
    yield store
    await store.close()


async def _accept(store: SQLiteStore, engine: EngineProcess, payload: bytes) -> int:
    seq = await store.accept(payload, NOW)
    engine.offer(InboxEntry(seq, NOW, payload), validate(payload))
    return seq


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_the_engine_processes_the_inbox_and_reports_its_counts(
    settings: Settings, web_store: SQLiteStore
) -> None:
    registry = CollectorRegistry()
    engine = EngineProcess(settings, Metrics(registry), clock=FixedClock(NOW))
    await engine.start(cursor=0)
    try:
        first = body(alert("A", pod="a"), alert("B", pod="b"))
        await _accept(web_store, engine, first)
        last = await _accept(web_store, engine, first)  # an HA peer's copy

        async def caught_up() -> bool:
            return engine.cursor == last

        await eventually(caught_up, "the engine to process both notifications", 20)
        assert {a.labels["alertname"] for a in await web_store.list_alerts()} == {"A", "B"}
        assert await web_store.cursor() == last
        assert _sample(registry, "receiver_notifications_total", result="accepted") == 1
        assert _sample(registry, "receiver_notifications_total", result="duplicate") == 1
        assert _sample(registry, "receiver_alert_updates_total", outcome="fired") == 2
        assert _sample(registry, "receiver_alert_duplicates_total") == 2
        pid = engine.pid
        assert pid is not None
    finally:
        await engine.close(grace_seconds=10)
    assert engine.pid is None
    assert not _alive(pid)


async def test_a_dead_engine_is_started_again_and_counted(settings: Settings, web_store: SQLiteStore) -> None:
    registry = CollectorRegistry()
    engine = EngineProcess(settings, Metrics(registry), clock=FixedClock(NOW))
    await engine.start(cursor=0)
    try:

        async def running() -> int | None:
            return engine.pid

        first_pid = await eventually(running, "the engine to start", 20)
        os.kill(first_pid, signal.SIGKILL)

        async def replaced() -> int | None:
            return engine.pid if engine.pid not in (None, first_pid) else None

        await eventually(replaced, "a new engine", 20)
        assert _sample(registry, "receiver_engine_restarts_total") == 1
        seq = await _accept(web_store, engine, body(alert("AfterRestart")))

        async def caught_up() -> bool:
            return engine.cursor == seq

        await eventually(caught_up, "the new engine to process", 20)
    finally:
        await engine.close(grace_seconds=10)


async def test_one_engine_at_a_time_the_second_waits_for_the_first(settings: Settings, web_store: SQLiteStore) -> None:
    line = settings_frame(settings)
    first = await _spawn(line)
    second = None
    try:
        await eventually(lambda: _locked(lock_path(settings.database_path)), "the first engine to take the lock", 20)
        assert first.stdin is not None and first.stdout is not None
        busy = await web_store.accept(body(alert("Busy")), NOW)  # the first engine works, then idles: it gets
        first.stdin.write(link.frame(busy))  # no wake-up after this, so the next entry is the second one's to take
        assert orjson.loads(await _next(first))["cursor"] == busy
        await asyncio.sleep(10 * LINGER_SECONDS)  # after a batch it reads once more, a linger later, then waits
        second = await _spawn(line)
        seq = await web_store.accept(body(alert("A")), NOW)
        assert second.stdin is not None and second.stdout is not None
        second.stdin.write(link.frame(seq))
        with pytest.raises(TimeoutError):  # it waits for the lock: no progress while the first one runs
            await _next(second, 1.0)
        first.stdin.close()
        assert await asyncio.wait_for(first.wait(), 20) == 0
        progress = orjson.loads(await _next(second))
        assert progress["cursor"] == seq
        assert progress["tally"]["notifications"] == {"accepted": 1}
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_the_engine_exits_when_its_stdin_closes_as_when_the_web_process_dies(settings: Settings) -> None:
    line = settings_frame(settings)
    proc = await _spawn(line)
    assert proc.stdin is not None
    await eventually(lambda: _locked(lock_path(settings.database_path)), "the engine to start", 20)
    proc.stdin.close()
    assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_unreadable_progress_is_logged_not_fatal(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    tally = {"notifications": {}, "received": {}, "outcomes": {}, "flapping": 0, "expired": 0}
    good = orjson.dumps({"cursor": 7, "tally": tally})
    script = STAND_IN + f"recv(); send(b'not json'); send({good!r}); sys.stdin.read()"
    engine = EngineProcess(settings, Metrics(CollectorRegistry()), command=(sys.executable, "-c", script))
    await engine.start(cursor=0)
    try:

        async def advanced() -> bool:
            return engine.cursor == 7

        await eventually(advanced, "the good line to be read after the bad one", 20)
        assert "unreadable progress line from the engine" in caplog.text
    finally:
        await engine.close(grace_seconds=10)


async def _spawn(line: bytes) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, *CLOCK, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdin is not None
    proc.stdin.write(line)
    return proc


async def _next(proc: asyncio.subprocess.Process, seconds: float = 20) -> bytes:
    """The next frame the engine sends."""
    assert proc.stdout is not None
    payload = await asyncio.wait_for(link.read(proc.stdout), seconds)
    assert payload is not None, "the engine closed its stdout"
    return payload


async def _locked(path: Path) -> bool:
    return _held(path)


def _held(path: Path) -> bool:
    """Whether someone holds the exclusive lock on ``path``."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_people_change_incidents_through_the_engine_process(settings: Settings, web_store: SQLiteStore) -> None:
    engine = EngineProcess(settings, Metrics(CollectorRegistry()), clock=FixedClock(NOW))
    with pytest.raises(EngineUnavailable):  # not started: nobody to apply the change
        await engine.acknowledge("INC-20261122-0001", "alice", "")
    await engine.start(cursor=0)
    try:
        last = await _accept(web_store, engine, body(alert("A", namespace="shop", severity="critical")))

        async def caught_up() -> bool:
            return engine.cursor == last

        await eventually(caught_up, "the engine to process the notification", 20)
        [incident] = await web_store.incidents(IncidentQuery())
        await engine.acknowledge(incident.id, "alice", "looking")
        await engine.note(incident.id, "bob", "a note")
        await engine.resolve(incident.id, "alice", "")
        with pytest.raises(InvalidTransition, match="resolved cannot become resolved"):
            await engine.resolve(incident.id, "alice", "")
        with pytest.raises(UnknownIncident):
            await engine.mitigate("INC-20200101-0001", "alice", "")
        found = await web_store.incident(incident.id, 100)
        assert found is not None
        assert [(e.kind.value, e.actor) for e in found[1] if e.actor != "receiver"] == [
            ("acknowledged", "alice"),
            ("note", "bob"),
            ("resolved", "alice"),
        ]
    finally:
        await engine.close(grace_seconds=10)


async def test_a_change_the_engine_never_answers_is_unavailable(settings: Settings) -> None:
    script = STAND_IN + "recv(); recv(); recv(); sys.exit(3)"
    engine = EngineProcess(settings, Metrics(CollectorRegistry()), command=(sys.executable, "-c", script))
    await engine.start(cursor=0)
    try:

        async def running() -> bool:
            return engine.pid is not None

        await eventually(running, "the stand-in engine to start", 20)
        with pytest.raises(EngineUnavailable, match="stopped before answering"):
            await engine.acknowledge("INC-20261122-0001", "alice", "")  # it reads the command, then exits
    finally:
        await engine.close(grace_seconds=10)


async def test_the_engine_process_lives_at_the_time_it_is_given(
    make_settings: Callable[..., Settings], web_store: SQLiteStore
) -> None:
    settings = make_settings(engine={"nice": 0}, alerts={"expiry_check_interval": "100ms", "expire_after": "12h"})
    await web_store.accept(body(alert("Old")), NOW - timedelta(hours=2))  # both in the engine's first batch
    await web_store.accept(body(alert("Recent")), NOW)
    engine = EngineProcess(settings, Metrics(CollectorRegistry()), clock=FixedClock(NOW + timedelta(hours=11)))
    await engine.start(cursor=0)
    try:

        async def old_expired() -> bool:  # a pass after the batch: it judged both alerts with the engine's time
            return bool(await web_store.list_alerts(frozenset({Status.EXPIRED})))

        await eventually(old_expired, "the old alert to expire", 20)
        states = {a.labels["alertname"]: a.state.status for a in await web_store.list_alerts()}
        assert states == {"Old": Status.EXPIRED, "Recent": Status.FIRING}  # the real clock would expire both
    finally:
        await engine.close(grace_seconds=10)


def test_a_clock_crosses_into_the_engine_process_as_text_or_not_at_all() -> None:
    for clock in (FixedClock(NOW), OffsetClock(timedelta(days=365)), OffsetClock(timedelta(seconds=-1.5))):
        assert parse(describe(clock) or "") == clock
    assert describe(utc_now) is None
    with pytest.raises(UndescribableClock):
        describe(lambda: NOW)
    with pytest.raises(ValueError, match="needs a UTC offset"):
        parse("fixed:2026-11-22T09:30:00")
    with pytest.raises(ValueError, match="expected fixed"):
        parse("tomorrow")


def test_an_engine_process_refuses_a_clock_it_cannot_be_given(settings: Settings) -> None:
    with pytest.raises(UndescribableClock):
        create_app(settings, registry=CollectorRegistry(), clock=lambda: NOW, engine="process")


async def test_the_builder_gives_its_clock_to_every_part_the_kubernetes_adapter_included(
    settings: Settings, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    try:
        engine = build(settings, store, clock=FixedClock(NOW), report=lambda *_: None)
        assert engine.kube.now() == NOW  # a revision's age, a restart's stamp: the engine's time, not the machine's
        assert engine.kube.dry_run  # no credentials here
    finally:
        await store.close()


class _RunsBroken:
    """The real store, except that reading the runs fails with an error no one expects (a bug, say)."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner

    async def interrupt_runs(self, now: datetime) -> list[Any]:
        raise RuntimeError("an unexpected bug")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_an_engine_task_that_ends_by_itself_is_logged_and_fails_the_engine(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    try:
        engine = build(settings, _RunsBroken(store), clock=FixedClock(NOW), report=lambda *_: None)  # type: ignore[arg-type]
        engine.start()
        assert engine.failed is not None
        assert await asyncio.wait_for(engine.failed, 10) == "runner"  # the engine process exits on it, and is restarted
        await engine.stop()
    finally:
        await store.close()
    [record] = [r for r in caplog.records if r.levelname == "ERROR" and "engine task" in r.getMessage()]
    assert "runner" in record.getMessage() and "an unexpected bug" in record.getMessage()


WAITING = """\
apiVersion: receiver/v1
kind: Playbook
metadata: {name: slow}
spec:
  trigger: {alertname: Slow}
  steps:
    - {name: settle, action: wait, duration: 1h}
    - {name: resolve, action: wait_for_resolution, timeout: 2h}
"""


async def test_the_engine_process_runs_playbooks_on_the_timer_it_is_given(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "slow.yaml").write_text(WAITING)
    settings = make_settings(engine={"nice": 0}, remediation={"playbook_dirs": [str(tmp_path / "playbooks")]})
    store = SQLiteStore(settings.database_path, role="web")
    await store.open()
    engine = EngineProcess(settings, Metrics(CollectorRegistry()), clock=FixedClock(NOW), timer=VirtualTimer())
    await engine.start(cursor=0)
    try:
        await _accept(store, engine, body(alert("Slow", namespace="shop")))

        async def ended() -> RunStatus | None:
            found = await store.runs()
            return found[0].status if found and found[0].status.final else None

        assert await eventually(ended, "the run to end", 20) == RunStatus.SUCCEEDED  # three virtual hours
        [summary] = await store.runs()
        run = await store.run(summary.id)
        assert run is not None
        assert [(s.name, s.seconds, s.reason) for s in run.steps] == [
            ("settle", 3600.0, ""),
            ("resolve", 7200.0, "still firing after 7200s"),
        ]
    finally:
        await engine.close(grace_seconds=10)
        await store.close()
