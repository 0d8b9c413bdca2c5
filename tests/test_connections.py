"""The connection guard on a served app: bounded connections, bounded time for a request head and body."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from receiver import config
from receiver.app import GUARD, create_app
from receiver.config import Settings
from receiver.web import serving
from receiver.web.connections import ConnectionGuard, Limits, fitted
from tests.conftest import Clock
from tests.e2e.harness import eventually

TIMEOUT = 0.5
MAX = 8
SERVER = {"max_connections": MAX, "header_timeout": "500ms", "body_timeout": "500ms"}
GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Served:
    """A served app's port and guard, and connections to it that are all closed at the end."""

    def __init__(self, port: int, guard: ConnectionGuard, registry: CollectorRegistry) -> None:
        self.port = port
        self.guard = guard
        self.registry = registry
        self.writers: list[asyncio.StreamWriter] = []

    async def connect(self, first: bytes = b"") -> Streams:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 5)
        self.writers.append(writer)
        writer.write(first)
        return reader, writer

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def _serving(settings: Settings, clock: Clock) -> AsyncIterator[Served]:
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry, clock=clock, engine="inline")
    runner, site = await serving.start(app, app[GUARD], "127.0.0.1", 0, shutdown_timeout=1)
    s = Served(site.port, app[GUARD], registry)
    try:
        yield s
    finally:
        await s.close()
        await runner.cleanup()


@pytest.fixture
async def served(make_settings: Callable[..., Settings], clock: Clock) -> AsyncIterator[Served]:
    """Short timeouts: the tests of the timeouts themselves."""
    async with _serving(make_settings(server=SERVER), clock) as s:
        yield s


@pytest.fixture
async def crowded(make_settings: Callable[..., Settings], clock: Clock) -> AsyncIterator[Served]:
    """Timeouts far longer than the tests: whatever closes a connection here is the limit, even on a slow machine."""
    async with _serving(make_settings(server={**SERVER, "header_timeout": "30s", "body_timeout": "30s"}), clock) as s:
        yield s


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """How long until the server closes the connection (reading what it sends); fails after ``seconds``."""
    started = time.perf_counter()
    with contextlib.suppress(ConnectionError):
        while await asyncio.wait_for(reader.read(4096), seconds):
            pass
    return time.perf_counter() - started


async def answer(reader: asyncio.StreamReader) -> bytes:
    """The status line and headers of one response."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    await asyncio.wait_for(reader.readexactly(length), 5)
    return head


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(served: Served) -> None:
    reader, _ = await served.connect()
    assert await closed_within(reader, TIMEOUT + 5) > TIMEOUT * 0.8
    assert served.guard.timed_out == 1
    closed = served.registry.get_sample_value("receiver_http_connections_closed_total", {"reason": "timed_out"})
    assert closed == 1  # exported: the chart can alert on a flood


async def test_a_head_sent_slowly_is_cut_off_at_the_header_timeout(served: Served) -> None:
    reader, writer = await served.connect(b"GET /healthz HTTP/1.1\r\n")
    for i in range(50):  # a header line every 100 ms: never a whole head
        writer.write(f"X-Slow-{i}: 1\r\n".encode())
        with contextlib.suppress(TimeoutError):
            if await asyncio.wait_for(reader.read(4096), 0.1) == b"":
                break
    else:
        pytest.fail("the connection was still open after 5 s")
    assert served.guard.timed_out == 1


async def test_a_body_that_trickles_gets_408_and_the_connection_closes(served: Served) -> None:
    reader, writer = await served.connect(b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    for _ in range(50):
        with contextlib.suppress(TimeoutError):
            head = await asyncio.wait_for(answer(reader), 0.1)
            break
        writer.write(b" ")
    else:
        pytest.fail("no answer after 5 s")
    assert head.startswith(b"HTTP/1.1 408") and b"Connection: close" in head
    await closed_within(reader, 5)


async def test_a_keep_alive_connection_idles_past_the_header_timeout(served: Served) -> None:
    reader, writer = await served.connect(GET)
    assert (await answer(reader)).startswith(b"HTTP/1.1 200")
    await asyncio.sleep(TIMEOUT * 2)  # idle between requests: the head timer is not running
    writer.write(GET)
    assert (await answer(reader)).startswith(b"HTTP/1.1 200")


async def test_past_the_limit_the_longest_waiting_connection_makes_room(crowded: Served) -> None:
    waiting = [await crowded.connect() for _ in range(MAX)]
    reader, _ = await crowded.connect(GET)
    assert (await answer(reader)).startswith(b"HTTP/1.1 200")
    first, _ = waiting[0]
    await closed_within(first, 10)  # evicted: the timeouts are 30 s
    assert crowded.guard.evicted == 1 and crowded.guard.timed_out == 0
    assert crowded.registry.get_sample_value("receiver_http_connections_closed_total", {"reason": "evicted"}) == 1
    assert crowded.registry.get_sample_value("receiver_http_connections", {"state": "open"}) == MAX


async def test_when_every_connection_is_busy_a_new_one_is_refused(crowded: Served) -> None:
    head = b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    busy = [await crowded.connect(head) for _ in range(MAX)]

    async def all_busy() -> bool:  # the app handles all of them: none waits for a head
        return crowded.guard.open_connections == len(busy) and not crowded.guard.waiting_connections

    await eventually(all_busy, "every connection to be handled", 10)
    reader, _ = await crowded.connect(GET)
    await closed_within(reader, 10)  # refused: the timeouts are 30 s
    assert crowded.guard.evicted == 1 and crowded.guard.timed_out == 0


def test_the_connection_limit_fits_the_open_file_limit() -> None:
    limits = Limits(512, 10.0, 30.0)
    assert fitted(limits, 256).max_connections == 192
    assert fitted(limits, 4096) == limits
    assert fitted(limits, resource.RLIM_INFINITY) == limits


@pytest.mark.parametrize(
    ("server", "key", "message"),
    [
        ({"max_connections": 4}, "server.max_connections", "greater than or equal to 8"),
        ({"header_timeout": "0s"}, "server.header_timeout", "positive"),
        ({"body_timeout": "soon"}, "server.body_timeout", "duration"),
        ({"read_timeout": "5s"}, "server.read_timeout", "unknown setting"),
    ],
)
def test_server_settings_are_strict(server: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(None, {}, {"server": server})
    problems = dict(caught.value.problems)
    assert key in problems and message in problems[key], problems


async def test_under_a_flood_of_silent_connections_one_that_began_its_request_keeps_its_slot(crowded: Served) -> None:
    reader, writer = await crowded.connect(b"GET /healthz HTTP/1.1\r\n")  # the oldest, but it has begun to speak

    async def spoke() -> bool:
        return crowded.guard.open_connections == 1 and all(c.spoke for c in crowded.guard._open.values())

    await eventually(spoke, "the first connection's bytes to arrive", 10)
    for _ in range(2 * MAX):  # each past the limit evicts a silent one
        await crowded.connect()

    async def flooded() -> bool:
        return crowded.guard.evicted == MAX + 1

    await eventually(flooded, "the flood to be let in, a silent connection evicted for each", 10)
    writer.write(b"Host: x\r\n\r\n")
    assert (await answer(reader)).startswith(b"HTTP/1.1 200")
