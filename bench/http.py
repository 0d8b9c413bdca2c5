"""A lean HTTP/1.1 client for load generation: keep-alive connections, one request at a time each.

The generator shares the machine with the server it measures. aiohttp's
client spends 70-90 us of CPU per request, close to what the bare server
spends answering it, so at the ceiling it took a whole core from the server
under test. This client writes requests prepared in advance and reads only
what it must (the status line and Content-Length): about 30 us per request.
It speaks just enough HTTP for the servers in this benchmark, which always
answer with a Content-Length.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class ProtocolError(RuntimeError):
    """The server answered something this client does not read."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` sends a prepared request and returns the status."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._end = -1  # where the current response ends in the buffer, once its head is read
        self._status = 0

    @classmethod
    async def open(cls, url: str) -> Connection:
        """Connect to ``url``'s host and port."""
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{url}: the load generator needs a host and a port")
        _, connection = await asyncio.get_running_loop().create_connection(cls, parts.hostname, parts.port)
        return connection

    async def request(self, prepared: bytes) -> int:
        """Send a request made by ``prepare`` and wait for the whole response; its status code."""
        if self.closed:
            raise ConnectionResetError("the connection is closed")
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(prepared)
        return await self._waiter

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (or closing)."""
        return self._transport is None or self._transport.is_closing()

    def close(self) -> None:
        """Close the connection."""
        if self._transport is not None:
            self._transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._end < 0 and not self._read_head():
            return
        if len(self._buffer) >= self._end:
            del self._buffer[: self._end]
            self._end = -1
            self._settle(self._status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle(exc or ConnectionResetError("the server closed the connection"))

    def _read_head(self) -> bool:
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        status_line, *headers = bytes(self._buffer[:head_end]).split(b"\r\n")
        fields = (h.partition(b":") for h in headers)
        length = next((int(v) for k, _, v in fields if k.strip().lower() == b"content-length"), None)
        if length is None:
            self._settle(ProtocolError("a response without Content-Length"))
            self.close()
            return False
        self._status = int(status_line.split(b" ", 2)[1])
        self._end = head_end + 4 + length
        return True

    def _settle(self, outcome: int | BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)


def prepare(url: str, body: bytes, token: str) -> bytes:
    """The bytes of a ``POST url`` with ``body`` as JSON and a bearer token."""
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
