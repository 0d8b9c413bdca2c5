"""What one client may hold of the server: a bounded number of connections, and bounded time to send a request.

aiohttp bounds neither the number of connections nor the time a client takes
to send a request head or body: 1,100 idle connections under a 1,024-file
limit, or uploads trickling a byte every 2 s, kept Alertmanager waiting. The
``ConnectionGuard`` sits between the listening socket and aiohttp's protocol
(``GuardedProtocol`` passes every event on) and knows each connection's
phase:

- *head*: opened, or bytes of a new request arrived; the whole head must
  arrive within ``header_timeout`` or the connection is closed;
- *busy*: aiohttp parsed the head and the app handles the request (the
  ``middleware`` marks it); its body must arrive within ``body_timeout`` or
  the request gets 408 and the connection is closed;
- *idle*: a keep-alive connection between requests (aiohttp's
  ``keepalive_timeout`` closes it).

At most ``max_connections`` are open: a new one closes the connection that
has waited longest in *head* or *idle*; when every one is busy the new one is
closed instead. A well-behaved client sends its request at once, so it is
never the one waiting longest.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from receiver.web.errors import json_error

log = logging.getLogger(__name__)
RESERVED_FILES = 64
"""Descriptors kept for everything but client connections: databases, the engine's pipes, logs, the listener."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds the guard enforces (seconds for times)."""

    max_connections: int
    header_timeout: float
    body_timeout: float


def fitted(limits: Limits, open_files: int | None = None) -> Limits:
    """``limits`` with ``max_connections`` lowered to fit the process's open-file limit (read if not given)."""
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if open_files == resource.RLIM_INFINITY or limits.max_connections <= open_files - RESERVED_FILES:
        return limits
    fit = max(open_files - RESERVED_FILES, 1)
    log.warning("server.max_connections lowered to %d to fit the open-file limit (%d)", fit, open_files)
    return Limits(fit, limits.header_timeout, limits.body_timeout)


class BodyTimeout(Exception):
    """The request body did not arrive in time."""


@dataclass(slots=True)
class _Connection:
    transport: asyncio.Transport
    busy: bool = False
    spoke: bool = False
    """Bytes of a request arrived since it last idled: it is sending, not holding a slot in silence."""
    deadline: asyncio.TimerHandle | None = None

    def disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None


class ConnectionGuard:
    """Bounds the connections of one server and the time each takes to send its request."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._open: dict[asyncio.Transport, _Connection] = {}
        self._waiting: OrderedDict[asyncio.Transport, _Connection] = OrderedDict()  # longest-waiting first
        self.evicted = 0
        self.timed_out = 0

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        return len(self._open)

    @property
    def waiting_connections(self) -> int:
        """How many open connections wait for a request head (or idle between requests)."""
        return len(self._waiting)

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """Wrap aiohttp's protocol factory so that every connection passes through the guard."""
        return lambda: GuardedProtocol(self, inner())

    def opened(self, transport: asyncio.Transport) -> bool:
        """Admit a new connection (closing the longest-waiting one if full); False if it was refused."""
        if len(self._open) >= self.limits.max_connections and not self._evict_one():
            self.evicted += 1
            transport.abort()
            return False
        connection = _Connection(transport)
        self._open[transport] = connection
        self._await_head(connection)
        return True

    def data_arrived(self, transport: asyncio.Transport) -> None:
        """Bytes came in: on an idle keep-alive connection, a new request head has begun."""
        connection = self._open.get(transport)
        if connection is None:
            return
        connection.spoke = True
        if not connection.busy and connection.deadline is None:
            self._await_head(connection)

    def closed(self, transport: asyncio.Transport) -> None:
        """The connection is gone."""
        connection = self._open.pop(transport, None)
        self._waiting.pop(transport, None)
        if connection is not None:
            connection.disarm()

    def request_started(self, transport: asyncio.Transport | None) -> None:
        """aiohttp parsed a request head on this connection."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.busy = True
            connection.disarm()
            self._waiting.pop(connection.transport, None)

    def request_finished(self, transport: asyncio.Transport | None) -> None:
        """The response is written: the connection idles until the next request begins."""
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.busy = False
            connection.spoke = False
            self._waiting[connection.transport] = connection
            self._waiting.move_to_end(connection.transport)

    def middleware(self) -> Any:
        """Mark each request's connection busy while it is handled; 408 when its body is late."""

        @web.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            transport = request.transport
            self.request_started(transport)
            late = asyncio.get_running_loop().call_later(self.limits.body_timeout, _body_late, request)
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except BodyTimeout:
                self.timed_out += 1
                response = json_error(408, f"the request body did not arrive within {self.limits.body_timeout:g}s")
                response.force_close()
                return response
            finally:
                late.cancel()
                self.request_finished(transport)

        return guard

    def _await_head(self, connection: _Connection) -> None:
        connection.disarm()
        loop = asyncio.get_running_loop()
        connection.deadline = loop.call_later(self.limits.header_timeout, self._head_late, connection)
        self._waiting[connection.transport] = connection
        self._waiting.move_to_end(connection.transport)

    def _head_late(self, connection: _Connection) -> None:
        connection.deadline = None
        self.timed_out += 1
        connection.transport.abort()

    def _evict_one(self) -> bool:
        """Close the longest-waiting silent connection, else the longest-waiting one: under a flood of
        connections that say nothing, one that has begun its request (Alertmanager's) keeps its slot."""
        if not self._waiting:
            return False
        transport = next((t for t, c in self._waiting.items() if not c.spoke), next(iter(self._waiting)))
        connection = self._waiting.pop(transport)
        connection.disarm()
        self.evicted += 1
        transport.abort()
        return True


def _body_late(request: web.Request) -> None:
    if not request.content.is_eof():
        request.content.set_exception(BodyTimeout())


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard told of its opening, its bytes and its end."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a stream server's transports are Transports
        self._inner.connection_made(transport)
        self._guard.opened(self._transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            self._guard.data_arrived(self._transport)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.closed(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardMetrics(Collector):
    """The guard's connections and what it closed, read at scrape time (a flood shows, and a tight limit)."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard

    def collect(self) -> Iterator[Metric]:
        """``receiver_http_connections{state}`` and ``receiver_http_connections_closed_total{reason}``."""
        open_now = GaugeMetricFamily(
            "receiver_http_connections",
            "HTTP connections open now, and those waiting for a request head.",
            labels=["state"],
        )
        open_now.add_metric(["open"], self._guard.open_connections)
        open_now.add_metric(["waiting"], self._guard.waiting_connections)
        closed = CounterMetricFamily(
            "receiver_http_connections_closed",
            "Connections the guard closed: evicted past server.max_connections, or too slow to send a request.",
            labels=["reason"],
        )
        closed.add_metric(["evicted"], self._guard.evicted)
        closed.add_metric(["timed_out"], self._guard.timed_out)
        yield open_now
        yield closed
