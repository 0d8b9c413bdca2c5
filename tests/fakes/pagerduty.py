"""A fake PagerDuty Events API v2: alert events (``POST /v2/enqueue``) and change events.

It follows PagerDuty's public documentation:

- https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
  (source: https://github.com/PagerDuty/developer-docs/blob/main/docs/events-API-v2/02-Trigger-Events.md):
  the fields (``routing_key`` the 32-character integration key; ``event_action`` trigger, acknowledge or
  resolve; ``dedup_key`` at most 255 characters; ``payload.summary`` at most 1024 characters,
  ``payload.source``, ``payload.severity`` critical/error/warning/info, and the optional timestamp,
  component, group, class and custom_details; ``images`` whose ``src`` is required and served over HTTPS;
  ``links`` whose ``href`` is required; ``client``, ``client_url``) and the de-duplication rules: a trigger
  without a ``dedup_key`` gets a generated UUID, returned in the answer; later events for a key apply to the
  open alert *of the same routing key*; a trigger for an open alert adds a log entry to it and opens no
  second alert; "while an incident is acknowledged, it won't generate any additional notifications, even if
  it receives new trigger events"; once resolved, a trigger opens a new alert and acknowledge/resolve events
  for the key are dropped.
- https://developer.pagerduty.com/docs/events-api-v2/overview/
  (source: .../docs/events-API-v2/01-Overview.md): 202 accepted, 400 bad request (not to be retried), 429
  too many calls (retry later), 5xx (retry later); "Events API payloads are limited to 512 KB".
- https://developer.pagerduty.com/docs/events-api-v2/rate-limits/
  (source: .../docs/events-API-v2/05-Rate-Limits.md): "approximately 120 calls/minute per integration key",
  "calculated over a 60 second window looking back from the current time"; a throttled event is answered
  429 and not ingested.
- https://developer.pagerduty.com/docs/events-api-v2/send-change-events/
  (source: .../docs/events-API-v2/03-Change-Events.md): ``POST /v2/change/enqueue`` with ``routing_key``,
  ``payload.summary`` (at most 1024 characters), optional source, timestamp, custom_details, and ``links``.

Webhooks (v3), the other way: ``signed_webhook`` builds what a webhook subscription sends when an
incident changes in PagerDuty, ``{"event": {"id", "event_type", "resource_type": "incident",
"occurred_at", "agent": {"id", "type": "user_reference", "summary"}, "data": {the incident, with
"incident_key": the Events API dedup_key}}}``, signed in ``X-PagerDuty-Signature`` as ``v1=`` HMAC-SHA256
of the body under each secret, comma-separated (several while a secret is rotated):
https://developer.pagerduty.com/docs/webhooks/webhook-signatures/ ,
https://developer.pagerduty.com/docs/webhooks/v3-overview/ .

The answer bodies are the ones PagerDuty's clients document and test against: 202
``{"status": "success", "message": "Event processed", "dedup_key": ...}`` and 400
``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``.

Where the documentation is silent, the fake chooses, and says so here: a body over 512 KB is answered 400
(the documented table has no 413; a body over aiohttp's 1 MiB ``client_max_size`` never reaches the fake and is
answered 413 by aiohttp); an unknown routing key is answered 400 ``Invalid routing key`` only when
the fake is given its known keys (``routing_keys=``), otherwise any 32-character key is accepted; the 429
body is ``{"status": "throttle event", "message": ...}`` with no ``Retry-After`` (none is documented);
only accepted events count toward the rate limit; the change-event answer is
``{"status": "success", "message": "Change event processed"}``. A "page" here is a new alert: the
notification PagerDuty sends when an alert opens, so a test asserts "paged once" with ``pages(key)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from aiohttp import web

from receiver.clock import Clock, utc_now
from tests.fakes.server import FakeServer, SlidingWindow

ENQUEUE = "/v2/enqueue"
CHANGE_ENQUEUE = "/v2/change/enqueue"
MAX_PAYLOAD_BYTES = 512 * 1024
ROUTING_KEY_LENGTH = 32
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})
SEVERITIES = frozenset({"critical", "error", "warning", "info"})
RATE_LIMIT = 120
RATE_WINDOW = timedelta(seconds=60)
INVALID = "Event object is invalid"


@dataclass(slots=True)
class Alert:
    """An alert PagerDuty opened for a (routing key, dedup key), with every event applied to it."""

    routing_key: str
    dedup_key: str
    payload: Mapping[str, Any]
    opened_at: datetime
    status: str = "triggered"
    events: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def triggers(self) -> int:
        return sum(1 for e in self.events if e["event_action"] == "trigger")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an accepted event did: created, deduplicated, acknowledged, resolved or dropped."""

    event: Mapping[str, Any]
    dedup_key: str
    effect: str
    at: datetime


def _text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _routing_key_problems(event: Mapping[str, Any]) -> list[str]:
    key = event.get("routing_key")
    if not isinstance(key, str) or not key:
        return ["'routing_key' is missing or blank"]
    if len(key) != ROUTING_KEY_LENGTH:
        return [f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)"]
    return []


def _summary_problems(payload: Mapping[str, Any]) -> list[str]:
    summary = payload.get("summary")
    if not _text(summary):
        return ["'payload.summary' is missing or blank"]
    if len(summary) > MAX_SUMMARY:
        return [f"'payload.summary' is too long (maximum is {MAX_SUMMARY} characters)"]
    return []


def _timestamp_problems(payload: Mapping[str, Any]) -> list[str]:
    if "timestamp" not in payload:
        return []
    stamp = payload["timestamp"]
    try:
        datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return ["'payload.timestamp' is not an ISO 8601 timestamp"]
    return []


def _payload_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    problems = _summary_problems(payload) + _timestamp_problems(payload)
    if not _text(payload.get("source")):
        problems.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        problems.append(f"'payload.severity' must be one of {', '.join(sorted(SEVERITIES))}")
    problems += [
        f"'payload.{name}' must be a string"
        for name in ("component", "group", "class")
        if name in payload and not isinstance(payload[name], str)
    ]
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        problems.append("'payload.custom_details' must be an object")
    return problems


def _context_problems(event: Mapping[str, Any], name: str, required: str) -> list[str]:
    items = event.get(name, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        return [f"'{name}' must be an array of objects"]
    problems = [
        f"'{name}[{i}].{required}' is missing or blank" for i, item in enumerate(items) if not _text(item.get(required))
    ]
    if name == "images":
        problems += [
            f"'images[{i}].src' must be served over HTTPS"
            for i, item in enumerate(items)
            if _text(item.get("src")) and not item["src"].startswith("https://")
        ]
    return problems


def _dedup_key_problems(event: Mapping[str, Any]) -> list[str]:
    action = event.get("event_action")
    if "dedup_key" not in event or event["dedup_key"] is None:
        return [] if action == "trigger" else [f"'dedup_key' is required for {action} events"]
    key = event["dedup_key"]
    if not _text(key):
        return ["'dedup_key' must be a non-blank string"]
    if len(key) > MAX_DEDUP_KEY:
        return [f"'dedup_key' is too long (maximum is {MAX_DEDUP_KEY} characters)"]
    return []


def alert_event_problems(event: Any) -> list[str]:
    """Why PagerDuty would refuse this alert event (empty when it is valid). Pure."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    problems = _routing_key_problems(event)
    action = event.get("event_action")
    if action not in ACTIONS:
        return [*problems, "'event_action' must be one of trigger, acknowledge, resolve"]
    problems += _dedup_key_problems(event)
    if action == "trigger":
        problems += _payload_problems(event.get("payload"))
        problems += _context_problems(event, "links", "href") + _context_problems(event, "images", "src")
        problems += [
            f"'{name}' must be a string"
            for name in ("client", "client_url")
            if name in event and not isinstance(event[name], str)
        ]
    return problems


def change_event_problems(event: Any) -> list[str]:
    """Why PagerDuty would refuse this change event (empty when it is valid). Pure."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return [*_routing_key_problems(event), "'payload' is missing or not an object"]
    problems = _routing_key_problems(event) + _summary_problems(payload) + _timestamp_problems(payload)
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        problems.append("'payload.custom_details' must be an object")
    return problems + _context_problems(event, "links", "href")


def parse_json(raw: bytes) -> Any:
    """The JSON in ``raw``, or None when it is not JSON (PagerDuty takes nothing else). Pure."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def invalid(errors: list[str]) -> web.Response:
    return web.json_response({"status": "invalid event", "message": INVALID, "errors": errors}, status=400)


class PagerDutyFake(FakeServer):
    """The Events API v2 on 127.0.0.1: ``url + "/v2/enqueue"`` stands for https://events.pagerduty.com/v2/enqueue."""

    def __init__(
        self,
        clock: Clock = utc_now,
        routing_keys: Iterable[str] | None = None,
        rate_limit: int | None = RATE_LIMIT,
        rate_window: timedelta = RATE_WINDOW,
    ) -> None:
        super().__init__(clock=clock)
        self.routing_keys = None if routing_keys is None else frozenset(routing_keys)
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.alerts: list[Alert] = []
        self.outcomes: list[Outcome] = []
        self.change_events: list[Mapping[str, Any]] = []
        self._windows: dict[str, SlidingWindow] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(ENQUEUE, self._enqueue)
        app.router.add_post(CHANGE_ENQUEUE, self._change_enqueue)

    @property
    def enqueue_url(self) -> str:
        return self.url + ENQUEUE

    @property
    def change_url(self) -> str:
        return self.url + CHANGE_ENQUEUE

    def channel_settings(self, routing_key: str) -> dict[str, Any]:
        """The receiver's ``notify.channels`` entry sending events here with ``routing_key``."""
        return {"type": "pagerduty", "routing_key": routing_key, "api_url": self.url}

    def alert(self, dedup_key: str, routing_key: str | None = None) -> Alert | None:
        """The latest alert opened for ``dedup_key`` (and ``routing_key`` when given)."""
        found = [a for a in self.alerts if a.dedup_key == dedup_key and routing_key in (None, a.routing_key)]
        return found[-1] if found else None

    def pages(self, dedup_key: str | None = None) -> int:
        """How many alerts opened (each pages the on-call once), for ``dedup_key`` or in all."""
        return sum(1 for a in self.alerts if dedup_key in (None, a.dedup_key))

    def _open(self, routing_key: str, dedup_key: str) -> Alert | None:
        for alert in reversed(self.alerts):
            if alert.routing_key == routing_key and alert.dedup_key == dedup_key and alert.status != "resolved":
                return alert
        return None

    def _throttled(self, routing_key: str, now: datetime) -> bool:
        """Whether the key has had its events this window; when not, this one is counted."""
        if self.rate_limit is None:
            return False
        window = self._windows.setdefault(routing_key, SlidingWindow(self.rate_limit, self.rate_window))
        return window.take(now) is not None

    async def _admit(self, request: web.Request, problems_of: Any) -> tuple[dict[str, Any], datetime] | web.Response:
        """The event when it is admitted: within size, valid, a known key, not throttled; else the answer."""
        raw = await request.read()
        if len(raw) > MAX_PAYLOAD_BYTES:
            return invalid([f"Event payload is {len(raw)} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes (512 KB)"])
        event = parse_json(raw)
        if event is None:
            return invalid(["Event object is not valid JSON"])
        problems = problems_of(event)
        if problems:
            return invalid(problems)
        if self.routing_keys is not None and event["routing_key"] not in self.routing_keys:
            return invalid(["Invalid routing key"])
        now = self.clock()
        if self._throttled(event["routing_key"], now):
            message = "Requests for this service are arriving too quickly. Please retry later."
            return web.json_response({"status": "throttle event", "message": message}, status=429)
        return event, now

    async def _enqueue(self, request: web.Request) -> web.Response:
        admitted = await self._admit(request, alert_event_problems)
        if isinstance(admitted, web.Response):
            return admitted
        event, now = admitted
        dedup_key, effect = self._apply(event, now)
        self.outcomes.append(Outcome(event, dedup_key, effect, now))
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, status=202
        )

    def _apply(self, event: dict[str, Any], now: datetime) -> tuple[str, str]:
        """The event's dedup key and what it did to the alerts."""
        action, routing_key = event["event_action"], event["routing_key"]
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        alert = self._open(routing_key, dedup_key)
        if action == "trigger" and alert is None:
            self.alerts.append(Alert(routing_key, dedup_key, event["payload"], now, events=[event]))
            return dedup_key, "created"
        if alert is None:
            return dedup_key, "dropped"
        alert.events.append(event)
        if action == "trigger":
            return dedup_key, "deduplicated"
        alert.status = "acknowledged" if action == "acknowledge" else "resolved"
        return dedup_key, alert.status

    async def _change_enqueue(self, request: web.Request) -> web.Response:
        admitted = await self._admit(request, change_event_problems)
        if isinstance(admitted, web.Response):
            return admitted
        self.change_events.append(admitted[0])
        return web.json_response({"status": "success", "message": "Change event processed"}, status=202)


def webhook_event(event_type: str, incident_key: str, *, agent: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A v3 webhook body for an incident whose ``incident_key`` (the Events API dedup_key) is given."""
    status = {"incident.acknowledged": "acknowledged", "incident.resolved": "resolved"}.get(event_type, "triggered")
    return {
        "event": {
            "id": "01" + uuid.uuid4().hex[:24].upper(),
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2026-11-22T09:05:00.000Z",
            "agent": dict(agent) if agent is not None else None,
            "client": None,
            "data": {
                "id": "Q0FAKEINC01",
                "type": "incident",
                "self": "https://api.pagerduty.com/incidents/Q0FAKEINC01",
                "html_url": "https://fake.pagerduty.com/incidents/Q0FAKEINC01",
                "number": 7,
                "status": status,
                "incident_key": incident_key,
                "created_at": "2026-11-22T09:00:00Z",
                "title": "an incident",
                "service": {"id": "P0SERVICE1", "type": "service_reference", "summary": "shop"},
                "urgency": "high",
            },
        }
    }


def user_agent(id: str, summary: str) -> dict[str, Any]:
    """The ``agent`` of a change a person made in PagerDuty."""
    return {"id": id, "type": "user_reference", "summary": summary, "self": f"https://api.pagerduty.com/users/{id}"}


def signed_webhook(secrets: Iterable[str], document: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The body and headers PagerDuty sends: one ``v1=`` signature per secret, comma-separated."""
    body = json.dumps(document).encode()
    signatures = ",".join("v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)
    return body, {"Content-Type": "application/json", "X-PagerDuty-Signature": signatures}
