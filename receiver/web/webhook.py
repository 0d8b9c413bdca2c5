"""``POST /api/v1/alerts``: Alertmanager's webhook.

Authenticate, bound the body, validate it, hand it to the ingestor and answer
only once it is durably in the inbox (the processor does the rest). Status
codes follow what Alertmanager does with them: 4xx only for requests that can
never succeed (it stops retrying them), 503 for "not now" (it retries with
backoff).
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from receiver.alerts.wire import InvalidNotification, Valid, validate
from receiver.engine.admission import Ingestor, Overloaded
from receiver.metrics import Metrics
from receiver.store import StoreError
from receiver.web.auth import Credentials, unauthorized
from receiver.web.errors import json_error

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = "5"


class WebhookHandler:
    """Receives Alertmanager notifications."""

    def __init__(self, ingestor: Ingestor, credentials: Credentials, metrics: Metrics, max_body_bytes: int) -> None:
        self._ingestor = ingestor
        self._credentials = credentials
        self._metrics = metrics
        self._max_body = max_body_bytes

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one webhook delivery."""
        if not self._credentials.allows(request):
            return self._reject("rejected_auth", request, unauthorized("receiver"))
        body = await self._read_body(request)
        if body is None:
            message = f"request body is larger than {self._max_body} bytes"
            return self._reject("rejected_too_large", request, json_error(413, message, limit=self._max_body))
        try:
            valid = validate(body)
        except InvalidNotification as err:
            problems = [{"field": field, "message": msg} for field, msg in err.problems]
            return self._reject("rejected_invalid", request, json_error(400, "invalid notification", problems=problems))
        return await self._accept(body, valid)

    async def _read_body(self, request: web.Request) -> bytes | None:
        if request.content_length is not None and request.content_length > self._max_body:
            return None
        try:
            return await request.read()  # bounded by the app's client_max_size = max_body_bytes
        except web.HTTPRequestEntityTooLarge:
            return None

    async def _accept(self, body: bytes, valid: Valid) -> web.Response:
        try:
            seq = await self._ingestor.submit(body, valid)
        except Overloaded as err:
            return self._unavailable("overloaded", str(err), valid)
        except StoreError as err:
            return self._unavailable("store_error", "the store cannot commit right now", valid, err)
        payload = orjson.dumps({"status": "accepted", "alerts": valid.alert_count, "inboxSeq": seq})
        return web.Response(body=payload, content_type="application/json")

    def _unavailable(self, result: str, message: str, valid: Valid, err: Exception | None = None) -> web.Response:
        self._metrics.count_notification(result)
        log.warning(
            "notification refused: %s",
            message,
            extra={"group_key": valid.group_key, "error": str(err) if err else None},
        )
        response = json_error(503, message, retryable=True)
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response

    def _reject(self, result: str, request: web.Request, response: web.Response) -> web.Response:
        self._metrics.count_notification(result)
        log.warning("notification rejected: %s", result, extra={"remote": request.remote, "status": response.status})
        return response
