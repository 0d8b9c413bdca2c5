"""What every fake shares: serving on a free loopback port, the request log, scripted faults, limiters.

A fake is a ``FakeServer`` subclass that adds its routes. Used as an async
context manager it listens on 127.0.0.1 on a port the kernel picked (the
socket is bound before the site starts, so no other process can take the
port in between) and exposes ``url`` for an in-process client or a child
process. Every request is appended to ``requests`` with the time of the
fake's clock and the status it was answered with; ``faults`` holds answers a
test scripted ahead (``fake.faults.add(Fault.status(429, retry_after=3), times=2)``),
served before the fake's own logic, in order, with no sleep involved. The
limiters run on the same injected clock, so a test crosses a rate limit by
moving its clock, not by waiting.

``hold(path_prefix)`` holds answers back: a matching request is handled (the
fake's state changes as the provider's would) and recorded on arrival, but its
answer waits until the test calls ``release()``. That is a provider which did
what it was asked while its answer is still in flight, the moment a test kills
the client to see what it does after a restart (``tests/e2e``). Holds end with
the fake (released as it stops), so a failing test never leaves a handler
waiting.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

from receiver.clock import Clock, utc_now

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PARSED = web.RequestKey("parsed", object)
"""Where a fake leaves the body as it understood it, for the request log."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request a fake received, as it understood it, and what it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: datetime
    status: int
    faulted: bool
    held: bool = False
    """Its answer was held back (``FakeServer.hold``) when it was recorded."""


@dataclass(eq=False)
class Hold:
    """Answers held back until ``release()``: what matched ``prefix`` is in ``arrived``, in arrival order.

    ``prefix`` is a path prefix for the HTTP fakes, an SMTP stage (``DATA``) for the SMTP fake.
    """

    prefix: str
    arrived: list[Any] = field(default_factory=list)
    """What was held (``Recorded`` requests, SMTP ``Received`` messages), answered or not yet."""
    released: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, what: str) -> bool:
        """Whether ``what`` (a path, a stage) is held, i.e. starts with the prefix and the hold is not released."""
        return what.startswith(self.prefix) and not self.released.is_set()

    def release(self) -> None:
        """Let every held answer go, and those of later matching requests pass at once."""
        self.released.set()

    async def keep(self, item: Any) -> None:
        """Record ``item`` as arrived, then wait for the release (the caller answers after)."""
        self.arrived.append(item)
        self._changed.set()
        await self.released.wait()

    async def wait_for_arrivals(self, count: int, *, within: float = 10.0) -> list[Any]:
        """``arrived`` once it holds at least ``count`` items; TimeoutError past ``within`` seconds."""
        return await grown(self.arrived, count, self._changed, within)


async def grown(items: list[T], count: int, changed: asyncio.Event, within: float) -> list[T]:
    """A copy of ``items`` once it holds at least ``count``, looked at each time ``changed`` is set.

    TimeoutError past ``within`` seconds.
    """
    async with asyncio.timeout(within):
        while len(items) < count:
            changed.clear()
            await changed.wait()
    return list(items)


@dataclass(frozen=True, slots=True)
class Fault:
    """An answer a test scripted ahead of the fake's own logic."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()
    path_prefix: str = ""

    @classmethod
    def status_only(cls, status: int, *, retry_after: int | None = None, path_prefix: str = "") -> Fault:
        """An HTTP status with an empty body (and ``Retry-After`` when given)."""
        headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
        return cls(status=status, headers=headers, path_prefix=path_prefix)

    @classmethod
    def json(cls, status: int, body: object, *, retry_after: int | None = None, path_prefix: str = "") -> Fault:
        """An HTTP status with a JSON body (and ``Retry-After`` when given)."""
        headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
        return cls(status, json.dumps(body).encode(), "application/json", headers, path_prefix)

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body, content_type=self.content_type, headers=self.headers)


class Faults:
    """Scripted answers, served in the order they were added to the requests whose path they match."""

    def __init__(self) -> None:
        self._queue: list[Fault] = []

    def add(self, fault: Fault, *, times: int = 1) -> None:
        self._queue.extend([fault] * times)

    def take(self, path: str) -> Fault | None:
        for i, fault in enumerate(self._queue):
            if path.startswith(fault.path_prefix):
                return self._queue.pop(i)
        return None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def clear(self) -> None:
        self._queue.clear()


def retry_after(seconds: float) -> int:
    """The whole seconds a ``Retry-After`` header carries for a wait of ``seconds``: rounded up, at least 1. Pure."""
    return max(1, math.ceil(seconds - 1e-9))


@dataclass
class TokenBucket:
    """``capacity`` requests at once, refilled at ``per_second``: steady rate with bursts tolerated."""

    capacity: float
    per_second: float
    tokens: float = field(init=False)
    last: datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def take(self, now: datetime) -> float | None:
        """None when a request may pass now (and it is counted), else the seconds until one may."""
        if self.last is not None:
            elapsed = max(0.0, (now - self.last).total_seconds())
            self.tokens = min(self.capacity, self.tokens + elapsed * self.per_second)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.per_second


@dataclass
class SlidingWindow:
    """At most ``limit`` requests in any ``window``: the (limit+1)th waits until the oldest leaves it."""

    limit: int
    window: timedelta
    seen: deque[datetime] = field(default_factory=deque)

    def take(self, now: datetime) -> float | None:
        """None when a request may pass now (and it is counted), else the seconds until one may."""
        while self.seen and now - self.seen[0] >= self.window:
            self.seen.popleft()
        if len(self.seen) < self.limit:
            self.seen.append(now)
            return None
        return (self.seen[0] + self.window - now).total_seconds()


def best_effort(raw: bytes, content_type: str) -> Any:
    """A body as a test would like to read it: JSON parsed, a form as a dict, else text; None when empty. Pure."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if content_type == "application/x-www-form-urlencoded":
        return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    try:
        return json.loads(text)
    except ValueError:
        return text


class FakeServer:
    """An aiohttp application on 127.0.0.1 that records what it receives and serves scripted faults first."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.requests: list[Recorded] = []
        self.faults = Faults()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._arrived = asyncio.Condition()
        self.holds: list[Hold] = []

    def hold(self, path_prefix: str) -> Hold:
        """Hold the answers of requests whose path starts with ``path_prefix`` (handled and recorded first)."""
        held = Hold(path_prefix)
        self.holds.append(held)
        return held

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("the fake is not serving: use it as `async with`")
        return f"http://127.0.0.1:{self._port}"

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._record])
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for held in self.holds:
            held.release()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._port = 0

    async def wait_for_requests(self, count: int, *, within: float = 10.0) -> list[Recorded]:
        """The log once it holds at least ``count`` requests; TimeoutError past ``within`` seconds."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    def received(self, path_prefix: str = "") -> list[Recorded]:
        """The requests whose path starts with ``path_prefix``, oldest first."""
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        request[PARSED] = best_effort(raw, request.content_type)
        at = self.clock()
        fault = self.faults.take(request.path)
        response = fault.response() if fault is not None else await handler(request)
        held = next((h for h in self.holds if h.matches(request.path)), None)
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=request.get(PARSED),
            raw=raw,
            at=at,
            status=response.status,
            faulted=fault is not None,
            held=held is not None,
        )
        self.requests.append(recorded)
        async with self._arrived:
            self._arrived.notify_all()
        if held is not None:
            await held.keep(recorded)
        return response
