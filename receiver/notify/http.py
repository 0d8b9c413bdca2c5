"""The one HTTP client edge of the channels: a request, bounded in time, answered as a plain value.

Channels build requests and read answers; they never hold a session nor see aiohttp. A request that
gets no answer raises ``Unreachable`` with the reason it will be counted under (``timeout`` or
``other``), and whether the request may have reached the provider all the same (``maybe_sent``: a
timeout, a connection lost after it was open; not a connection refused). Tests point channels at
local fakes of the providers (``tests/fakes``) through this same client: nothing is monkeypatched.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
import orjson

from receiver.notify.model import Reason

DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 1 << 20
"""Most of an answer read (a provider's answer is small; a proxy's error page may not be)."""


NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL)
"""Errors raised before a byte of the request was written: no connection (refused, DNS, TLS), a bad URL."""


class Unreachable(Exception):
    """No answer: the connection failed or timed out.

    ``maybe_sent``: the request may have reached the provider (a timeout, a connection lost once it was
    open); False only when it certainly did not (the connection was never made), so True unless said.
    """

    def __init__(self, reason: Reason, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.maybe_sent = maybe_sent


@dataclass(frozen=True, slots=True)
class Response:
    """An answer."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> object:
        """The body as JSON; None when it is not JSON."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def text(self, limit: int = 300) -> str:
        """The start of the body, for an error message."""
        return self.body[:limit].decode(errors="replace")


class Http:
    """An HTTP client for the channels; ``open`` before use, ``close`` after."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_SECONDS, ssl_context: ssl.SSLContext | None = None) -> None:
        self._timeout = timeout
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Start the connection pool."""
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else aiohttp.TCPConnector()
            self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Http:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: object = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        seconds: float | None = None,
    ) -> Response:
        """Send a request; its answer, whatever its status. ``Unreachable`` when there is none."""
        if self._session is None:
            await self.open()
        assert self._session is not None
        sent_headers = dict(headers or {})
        if json is not None:
            data = orjson.dumps(json)
            sent_headers.setdefault("Content-Type", "application/json; charset=utf-8")
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                headers=sent_headers,
                params=params,
                timeout=aiohttp.ClientTimeout(total=seconds or self._timeout),
                allow_redirects=False,
            ) as answer:
                body = await _read(answer.content, MAX_ANSWER_BYTES)
                return Response(answer.status, {k.lower(): v for k, v in answer.headers.items()}, body)
        except TimeoutError as err:
            sent = not isinstance(err, NOT_SENT)
            raise Unreachable(Reason.TIMEOUT, f"{method} {_safe(url)}: no answer in time", maybe_sent=sent) from err
        except aiohttp.ClientError as err:
            said = _scrubbed(str(err), url)
            message = f"{method} {_safe(url)}: {type(err).__name__}: {said}"
            raise Unreachable(Reason.OTHER, message, maybe_sent=not isinstance(err, NOT_SENT)) from err


async def _read(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to ``limit`` bytes: ``StreamReader.read(n)`` returns what has arrived, maybe less."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        part = await stream.read(limit - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _scrubbed(text: str, url: str) -> str:
    """An error's text without ``url``'s path: an invalid URL's error quotes it, webhook secret and all."""
    path = url.split("://", 1)[-1].partition("/")[2]
    return text.replace(path, "…") if path else text


def _safe(url: str) -> str:
    """A URL for a message: without its path (webhook URLs carry their secret there)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/…" if rest else url
