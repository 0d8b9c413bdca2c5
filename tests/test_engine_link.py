"""The link between the web process and the engine: any message the API admits crosses, and nothing ends it silently.

Issue #12: a tick that resolved about 4,000 incidents sent a progress line over
the 64 KiB limit of the web process's line reader, and a note of control
characters on a long incident id sent a command line over the engine's; the
link broke, the engine was never started again, and nothing said so. These
tests use the real engine process (or a stand-in that misbehaves once, then
becomes the real engine), its time fixed with ``FixedClock``, and wait for
conditions with bounded polls.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from receiver.alerts.wire import validate
from receiver.clock import FixedClock
from receiver.config import Settings
from receiver.engine import link, process
from receiver.engine.process import EngineProcess
from receiver.incidents.book import UnknownIncident
from receiver.metrics import Metrics
from receiver.store import InboxEntry, IncidentQuery
from receiver.store.sqlite import SQLiteStore
from receiver.web.health import Readiness
from receiver.web.incidents_api import MAX_TEXT
from receiver.web.scrape import Scrape
from tests.e2e.harness import eventually
from tests.payloads import alert, body

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(engine={"nice": 0}, alerts={"expiry_check_interval": "100ms"})


@pytest.fixture
async def web_store(settings: Settings) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(settings.database_path, role="web")
    await store.open()
    yield store
    await store.close()


async def _accept(store: SQLiteStore, engine: EngineProcess, payload: bytes, at: datetime = NOW) -> int:
    seq = await store.accept(payload, at)
    engine.offer(InboxEntry(seq, at, payload), validate(payload))
    return seq


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def _processes(store: SQLiteStore, engine: EngineProcess, what: str) -> None:
    """A new notification is processed: the engine (whichever one runs now) works."""
    seq = await _accept(store, engine, body(alert("Canary", namespace="canary")))

    async def caught_up() -> bool:
        return engine.cursor >= seq

    await eventually(caught_up, what, 60)


async def _running(engine: EngineProcess) -> int:
    async def pid() -> int | None:
        return engine.pid

    return await eventually(pid, "the engine to start", 30)


async def test_a_tick_resolving_10000_incidents_reaches_the_web_process_and_the_engine_goes_on(
    settings: Settings, web_store: SQLiteStore
) -> None:
    many = 10_000
    firing = [alert("Down", namespace=f"ns-{i}") for i in range(many)]
    await web_store.accept(body(*firing), NOW - timedelta(minutes=20))  # 10,000 scopes: 10,000 incidents
    resolved = [alert("Down", status="resolved", namespace=f"ns-{i}") for i in range(many)]
    await web_store.accept(body(*resolved), NOW - timedelta(minutes=15))  # quiet since: the next tick resolves all
    registry = CollectorRegistry()
    engine = EngineProcess(settings, Metrics(registry), clock=FixedClock(NOW))
    await engine.start(cursor=0)
    try:
        pid = await _running(engine)

        async def all_resolved() -> bool:
            counts = [
                _sample(registry, "receiver_incident_time_to_resolve_seconds_count", severity=s) for s in SEVERITIES
            ]
            return sum(counts) == many  # the tick's one progress frame (about 250 KB) crossed

        await eventually(all_resolved, "the tick's report of 10,000 resolutions", 240)
        page = await web_store.incidents(IncidentQuery(limit=5))
        assert [i.status.value for i in page] == ["resolved"] * 5
        await _processes(web_store, engine, "the same engine to go on processing")
        assert engine.pid == pid
        assert _sample(registry, "receiver_engine_restarts_total") == 0
    finally:
        await engine.close(grace_seconds=10)


async def test_a_note_of_control_characters_at_the_apis_limit_on_a_long_id_leaves_the_engine_working(
    settings: Settings, web_store: SQLiteStore
) -> None:
    registry = CollectorRegistry()
    engine = EngineProcess(settings, Metrics(registry), clock=FixedClock(NOW))
    await engine.start(cursor=0)
    try:
        pid = await _running(engine)
        await _processes(web_store, engine, "the first notification")
        [incident] = await web_store.incidents(IncidentQuery())
        text = "".join(chr(i % 32) for i in range(MAX_TEXT))  # six bytes each in JSON: 60 KB
        await engine.note(incident.id, "\x07" * 100, text)
        with pytest.raises(UnknownIncident):  # the command is over 70 KB: it crosses, and the engine answers
            await engine.note("I" * 1_500, "alice", text)
        found = await web_store.incident(incident.id, 100)
        assert found is not None
        assert [e.text for e in found[1] if e.kind.value == "note"] == [text]
        await _processes(web_store, engine, "the same engine to go on processing")
        assert engine.pid == pid
        assert _sample(registry, "receiver_engine_restarts_total") == 0
    finally:
        await engine.close(grace_seconds=10)


MISBEHAVIOURS = {
    "exits 0": "sys.exit(0)",
    "exits non-zero": "sys.exit(3)",
    "is killed": "os.kill(os.getpid(), signal.SIGKILL)",
    "closes its stdout": "os.close(1); sys.stdin.buffer.read()",
    "closes its stdout and ignores its stdin": "os.close(1); signal.pause()",
    "writes garbage": "sys.stdout.buffer.write(b'Traceback (most recent call last):\\n'); sys.stdout.flush();"
    " sys.stdin.buffer.read()",
    "writes half a frame": "sys.stdout.buffer.write(b'\\0\\0\\0\\x64{\"cursor\"'); sys.stdout.flush(); os.close(1);"
    " sys.stdin.buffer.read()",
    "announces a frame over the limit": "sys.stdout.buffer.write(b'\\xff\\xff\\xff\\xff'); sys.stdout.flush();"
    " sys.stdin.buffer.read()",
}
ONCE = """
import os, signal, sys
marker = sys.argv[1]
if not os.path.exists(marker):
    open(marker, "w").close()
    {misbehave}
os.execv(sys.executable, [sys.executable, "-m", "receiver.engine", *sys.argv[2:]])
"""
"""A stand-in that misbehaves the first time it is started, and is the real engine every time after."""


@pytest.mark.parametrize("misbehaviour", list(MISBEHAVIOURS))
async def test_an_engine_that_ends_any_way_is_started_again_counted_logged_and_processing_resumes(
    misbehaviour: str,
    settings: Settings,
    web_store: SQLiteStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(process, "REAP_GRACE_SECONDS", 0.5)  # one that ignores the end of its stdin is killed
    script = ONCE.replace("{misbehave}", MISBEHAVIOURS[misbehaviour])
    command = (sys.executable, "-c", script, str(tmp_path / "misbehaved"))
    registry = CollectorRegistry()
    engine = EngineProcess(settings, Metrics(registry), command=command, clock=FixedClock(NOW))
    await engine.start(cursor=0)
    try:
        await _processes(web_store, engine, "the engine started again to process")
        assert _sample(registry, "receiver_engine_restarts_total") == 1
        [restart] = [r for r in caplog.records if "starting it again" in r.getMessage()]
        assert restart.levelno == logging.ERROR
    finally:
        await engine.close(grace_seconds=10)


async def test_a_reader_that_fails_restarts_the_engine(
    settings: Settings, web_store: SQLiteStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = CollectorRegistry()
    engine = EngineProcess(settings, Metrics(registry), clock=FixedClock(NOW))
    progress = engine._progress
    failures = iter([RuntimeError("a bug in reading progress")])

    def failing_once(payload: bytes) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        progress(payload)

    monkeypatch.setattr(engine, "_progress", failing_once)
    await engine.start(cursor=0)
    try:
        await _running(engine)
        await _accept(web_store, engine, body(alert("First")))  # its progress is the one that fails to be read

        async def restarted() -> bool:
            return _sample(registry, "receiver_engine_restarts_total") == 1

        await eventually(restarted, "the engine to be started again", 30)
        await _processes(web_store, engine, "the engine started again to process")
        assert "lost its link: RuntimeError('a bug in reading progress')" in caplog.text
    finally:
        await engine.close(grace_seconds=10)


async def test_a_supervisor_that_fails_is_started_again_counted_and_logged(
    settings: Settings, web_store: SQLiteStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = CollectorRegistry()
    engine = EngineProcess(settings, Metrics(registry), clock=FixedClock(NOW))
    restart_after = engine._restart_after
    failures = iter([RuntimeError("a bug in the supervisor")])

    async def failing_once(outcome: str, ran_seconds: float) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        await restart_after(outcome, ran_seconds)

    monkeypatch.setattr(engine, "_restart_after", failing_once)
    await engine.start(cursor=0)
    try:
        first = await _running(engine)
        os.kill(first, signal.SIGKILL)  # the supervisor fails handling it

        async def replaced() -> int | None:
            return engine.pid if engine.pid not in (None, first) else None

        await eventually(replaced, "a new supervisor to start a new engine", 30)
        await _processes(web_store, engine, "the new engine to process")
        assert _sample(registry, "receiver_engine_restarts_total") == 1
        [failed] = [r for r in caplog.records if r.getMessage().startswith("the engine supervisor failed")]
        assert failed.levelno == logging.ERROR and failed.exc_info is not None
    finally:
        await engine.close(grace_seconds=10)


async def test_a_stalled_engine_shows_in_the_gauge_and_in_readiness(settings: Settings, web_store: SQLiteStore) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    engine = EngineProcess(settings, metrics, clock=FixedClock(NOW))
    later = FixedClock(NOW + timedelta(minutes=3))  # the web process's time when it is asked
    scrape = Scrape(metrics, web_store, lambda: 0, clock=later)
    readiness = Readiness(web_store, later, timedelta(minutes=2))
    await engine.start(cursor=0)
    pid = await _running(engine)
    try:
        await _processes(web_store, engine, "the first notification")
        assert await _age(scrape, registry) == 0  # nothing waits
        assert (await readiness.handle(make_mocked_request("GET", "/readyz"))).status == 200
        os.kill(pid, signal.SIGSTOP)
        seq = await _accept(web_store, engine, body(alert("Waiting")))  # received at NOW, 3 minutes before `later`
        assert await _age(scrape, registry) == 180
        stuck = await readiness.handle(make_mocked_request("GET", "/readyz"))
        assert stuck.status == 503
        answer = orjson.loads(stuck.body)  # type: ignore[arg-type]
        assert answer["store"] == "writable"
        assert answer["processing"].startswith("stuck: the oldest unprocessed notification has waited 180s")
        os.kill(pid, signal.SIGCONT)

        async def caught_up() -> bool:
            return engine.cursor == seq

        await eventually(caught_up, "the engine to go on", 30)
        assert await _age(scrape, registry) == 0
        assert (await readiness.handle(make_mocked_request("GET", "/readyz"))).status == 200
    finally:
        os.kill(pid, signal.SIGCONT)
        await engine.close(grace_seconds=10)


async def _age(scrape: Scrape, registry: CollectorRegistry) -> float:
    await scrape.handle(make_mocked_request("GET", "/metrics"))
    return _sample(registry, "receiver_inbox_oldest_unprocessed_age_seconds")


def test_a_frame_carries_any_message_and_refuses_one_over_the_limit() -> None:
    message: dict[str, Any] = {"text": "\x00" * 100_000, "id": "I" * 1_500}
    data = link.frame(message)
    assert len(data) > 600_000 and data[:4] == len(data[4:]).to_bytes(4, "big")
    with pytest.raises(link.FrameTooLarge, match="over the link's limit of 100 bytes"):
        link.frame(message, limit=100)


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (b"\x00\x00", "inside a frame's header"),
        (b"\x00\x00\x00\x10{}", "inside a frame"),
        (b"\x7f\xff\xff\xff", "over the link's limit"),
    ],
)
async def test_a_broken_stream_is_told_apart_from_a_clean_end(stream: bytes, error: str) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(link.frame([1, 2]) + stream)
    reader.feed_eof()
    assert orjson.loads(await link.read(reader) or b"") == [1, 2]
    with pytest.raises(link.LinkBroken, match=error):
        await link.read(reader)
    clean = asyncio.StreamReader()
    clean.feed_data(link.frame(7))
    clean.feed_eof()
    assert await link.read(clean) == b"7"
    assert await link.read(clean) is None


def test_an_engine_message_over_the_limit_closes_its_link_with_an_error(caplog: pytest.LogCaptureFixture) -> None:
    out = io.BytesIO()
    writer = link.Writer(out, limit=50)
    writer.send({"cursor": 1})
    sent = out.getvalue()
    writer.send({"cursor": 2, "tally": "x" * 100})  # the web process sees the link end and starts another engine
    assert out.closed
    assert sent == link.frame({"cursor": 1})
    [record] = caplog.records
    assert record.levelno == logging.ERROR and "over the link's limit of 50 bytes" in record.getMessage()
    writer.send({"cursor": 3})  # dropped, not an exception in the engine
