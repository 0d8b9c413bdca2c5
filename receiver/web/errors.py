"""JSON error responses, and the middleware that times every request.

Every error the daemon returns is a JSON object with an ``error`` message,
so that Alertmanager's logs and an API client both show what was wrong.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from receiver.metrics import Metrics

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def json_error(status: int, message: str, **details: Any) -> web.Response:
    """A JSON error response: ``{"error": message, ...details}``."""
    return web.json_response({"error": message, **details}, status=status)


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
            return json_error(exc.status, exc.reason)
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            method = request.method if request.method in _METHODS else "other"
            metrics.observe_request(route, method, time.perf_counter() - started)

    return observe
