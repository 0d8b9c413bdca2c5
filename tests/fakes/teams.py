"""A fake Microsoft Teams Workflows webhook: a Power Automate flow that posts an Adaptive Card to a channel.

Why: Office 365 connector webhooks are retired; a Teams channel now receives a
notification through a Workflows flow triggered "When a Teams webhook request
is received", whose URL carries its authorization in the ``sig`` query
parameter. The Teams channel of issue #14 posts one message holding an
Adaptive Card there; this fake answers as the documentation says.

Documentation followed:
- the message the flow takes (``{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "content": {"type": "AdaptiveCard", ...}}]}``)
  and the Workflows flow that replaces incoming webhooks:
  https://learn.microsoft.com/en-us/connectors/teams/?tabs=text1%2Cdotnet#microsoft-teams-webhook ,
  https://github.com/MicrosoftDocs/msteams-docs/blob/main/msteams-platform/webhooks-and-connectors/how-to/add-incoming-webhook.md
- the message size limit, about 28 KB, over which posting fails with "Request
  Entity Too Large" (HTTP 413), and the rate limit: more than four requests in
  one second are throttled (HTTP 429): the same pages, and
  https://learn.microsoft.com/en-us/connectors/teams/ (known issues and limitations)
- the request trigger of a flow answers ``202 Accepted`` once the run is
  started; the caller does not wait for the run:
  https://learn.microsoft.com/en-us/azure/connectors/connectors-native-reqres
- a 429 carries ``Retry-After`` in seconds, as Azure services do:
  https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling#error-code

Where the documentation leaves a choice, the fake's is stated here:
- In the real service, the card is checked by the flow's "Post card" action
  after the 202; a bad card is a failed run the caller never hears of. The
  fake's default (``validate="request"``) rejects a malformed card or a
  message over the limit at the request, 400 or 413, so a test sees it;
  ``validate="run"`` models the real asynchrony: 202, and the failure is in
  ``fake.runs``.
- 28 KB is read as 28 × 1024 bytes of the request body.
- errors carry the Logic Apps error shape ``{"error": {"code", "message"}}``;
  a wrong or missing ``sig`` is 401, an unknown flow 404.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from aiohttp import web

from receiver.clock import Clock, utc_now
from tests.fakes.server import PARSED, FakeServer, Fault, SlidingWindow, retry_after

ADAPTIVE = "application/vnd.microsoft.card.adaptive"
MAX_BYTES = 28 * 1024
PER_SECOND = 4
API_VERSION = "2016-06-01"

Validate = Literal["request", "run"]


@dataclass(frozen=True, slots=True)
class Run:
    """A flow run a request started: the message it carried and, when its card was refused, why."""

    flow: str
    at: datetime
    message: Any
    error: str | None

    @property
    def posted(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Flow:
    id: str
    sig: str
    channel: str


class TeamsFake(FakeServer):
    """Workflows webhook URLs (``/workflows/<id>/triggers/manual/paths/invoke?...&sig=...``) on 127.0.0.1."""

    def __init__(self, *, clock: Clock = utc_now, validate: Validate = "request") -> None:
        super().__init__(clock=clock)
        self.validate = validate
        self.flows: dict[str, Flow] = {}
        self.runs: list[Run] = []
        self._windows: dict[str, SlidingWindow] = {}

    def add_flow(self, channel: str = "General") -> str:
        """A new flow posting to ``channel``; its webhook URL (path and query) on this fake."""
        flow = Flow(id=secrets.token_hex(16), sig=secrets.token_urlsafe(32), channel=channel)
        self.flows[flow.id] = flow
        query = f"api-version={API_VERSION}&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={flow.sig}"
        return f"/workflows/{flow.id}/triggers/manual/paths/invoke?{query}"

    def posted(self, channel: str | None = None) -> list[Any]:
        """The cards the flows posted (to ``channel``, or any), oldest first."""
        return [
            card
            for run in self.runs
            if run.posted and (channel is None or self.flows[run.flow].channel == channel)
            for card in cards(run.message)
        ]

    def throttle(self, *, times: int = 1, retry_after: int = 3) -> None:
        """Answer the next ``times`` requests HTTP 429 with ``Retry-After``."""
        body = error_body("TooManyRequests", "The request was throttled.")
        self.faults.add(Fault.json(429, body, retry_after=retry_after), times=times)

    def server_error(self, *, times: int = 1, status: int = 500) -> None:
        self.faults.add(Fault.json(status, error_body("InternalServerError", "scripted")), times=times)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/workflows/{flow}/triggers/manual/paths/invoke", self._invoke)

    async def _invoke(self, request: web.Request) -> web.Response:
        flow = self.flows.get(request.match_info["flow"])
        if flow is None:
            return error(404, "WorkflowNotFound", "The workflow was not found.")
        sig = request.query.get("sig")
        if not sig:
            return error(401, "DirectApiAuthorizationRequired", "The request must be authenticated.")
        if sig != flow.sig:
            return error(401, "DirectApiInvalidAuthorizationSignature", "The provided signature is not valid.")
        now = self.clock()
        window = self._windows.setdefault(flow.id, SlidingWindow(PER_SECOND, timedelta(seconds=1)))
        wait = window.take(now)
        if wait is not None:
            headers = {"Retry-After": str(retry_after(wait))}
            return error(429, "TooManyRequests", "More than 4 requests in a second.", headers=headers)
        raw = await request.read()
        try:
            message = json.loads(raw)
        except ValueError:
            return error(400, "InvalidRequestContent", "The request content is not valid JSON.")
        request[PARSED] = message
        problem = card_problem(message, len(raw))
        if problem is not None and self.validate == "request":
            status, code, text = problem
            return error(status, code, text)
        self.runs.append(Run(flow=flow.id, at=now, message=message, error=None if problem is None else problem[2]))
        return web.Response(status=202)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(code, message), status=status, headers=headers)


def cards(message: Any) -> list[Any]:
    """The Adaptive Cards a message carries. Pure."""
    return [a["content"] for a in message.get("attachments", [])] if isinstance(message, dict) else []


def card_problem(message: Any, size: int) -> tuple[int, str, str] | None:
    """Why the flow could not post ``message`` (status, code, text), or None. Pure."""
    if size > MAX_BYTES:
        return 413, "RequestEntityTooLarge", f"The message is {size} bytes; the limit is {MAX_BYTES}."
    if not isinstance(message, dict) or message.get("type") != "message":
        return 400, "BadRequest", 'The body must be an object with "type": "message".'
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return 400, "BadRequest", 'The message must have "attachments", a non-empty list.'
    for i, attachment in enumerate(attachments):
        why = attachment_problem(attachment)
        if why is not None:
            return 400, "BadRequest", f"attachments[{i}]: {why}"
    return None


def attachment_problem(attachment: Any) -> str | None:
    """What is wrong with one attachment as an Adaptive Card, or None. Pure."""
    if not isinstance(attachment, dict) or attachment.get("contentType") != ADAPTIVE:
        return f'contentType must be "{ADAPTIVE}"'
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return 'content must be an object with "type": "AdaptiveCard"'
    if not isinstance(card.get("version"), str):
        return 'content must name its schema "version" (e.g. "1.4")'
    body = card.get("body", [])
    if not isinstance(body, list) or not all(isinstance(e, dict) and isinstance(e.get("type"), str) for e in body):
        return 'content.body must be a list of elements, each with a "type"'
    return None
