"""JSON error responses, and the middleware that times every request.

Every error the daemon returns is a JSON object with an ``error`` message,
so that Alertmanager's logs and an API client both show what was wrong.
What went wrong inside (a store or engine error, with its paths and internal
messages) goes to the log only: a client is told one of a few generic
reasons (``public_reason``), in ``unavailable`` for a 503 and in ``/readyz``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from receiver.metrics import Metrics

log = logging.getLogger(__name__)
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_REASONS = (
    ("locked", "the database is locked"),
    ("full", "the database or disk is full"),
    ("closed", "the store is closed"),
    ("did not answer", "the engine did not answer in time"),
    ("not running", "the engine is being started again"),
)
"""Generic reasons a client may be told, by a word of the internal message; anything else is GENERIC."""
GENERIC = "the store or the engine failed"
_KEPT_HEADERS = frozenset({"allow", "retry-after", "www-authenticate"})
"""Headers of an aiohttp HTTP error that the JSON answer keeps (405's Allow above all)."""


def json_error(status: int, message: str, **details: Any) -> web.Response:
    """A JSON error response: ``{"error": message, ...details}``."""
    return web.json_response({"error": message, **details}, status=status)


def public_reason(err: BaseException) -> str:
    """What a client may be told of ``err``: a generic reason, never its text (paths, internals)."""
    text = str(err).lower()
    return next((reason for word, reason in _REASONS if word in text), GENERIC)


def unavailable(err: BaseException) -> web.Response:
    """503 (Retry-After) for a change the store or the engine could not make now; ``err`` is logged, not told."""
    log.warning("a change was not made", extra={"error": str(err), "kind": type(err).__name__})
    response = json_error(503, f"the change was not made: {public_reason(err)}")
    response.headers["Retry-After"] = "1"
    return response


def middleware(metrics: Metrics) -> Any:
    """Time each request by route and method; render HTTP errors as JSON."""

    @web.middleware
    async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = json_error(exc.status, exc.reason)
            response.headers.extend((k, v) for k, v in exc.headers.items() if k.lower() in _KEPT_HEADERS)
            return response
        except (HttpProcessingError, RequestPayloadError):  # the body cannot be read as sent (gzip that is not gzip)
            return json_error(400, "the request body cannot be read as its Content-Encoding says")
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            method = request.method if request.method in _METHODS else "other"
            metrics.observe_request(route, method, time.perf_counter() - started)

    return observe
