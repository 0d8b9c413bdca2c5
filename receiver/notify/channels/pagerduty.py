"""PagerDuty through the Events API v2: an incident pages the on-call once, and PagerDuty's alert follows it.

The incident id is the alert's ``dedup_key``, so everything about one incident lands on one PagerDuty
alert: opening it triggers (pages), a worse severity, a new service or a reopening triggers again with
the current summary, severity and details (PagerDuty updates the open alert and does not page again;
a resolved one is opened anew, which pages), acknowledging and resolving follow. Anything else (notes,
runs, status updates) is for the chat channels: it is skipped. A test (``receiver notify test``)
triggers an alert of its own, which pages, and resolves it at once, so nobody has to. Sending twice is
harmless (the dedup key), so a delivery a crash interrupted is sent again. Documentation followed:
https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ (fields, limits, de-duplication),
https://developer.pagerduty.com/docs/events-api-v2/overview/ (202, 400, 429, 5xx; 512 KB an event).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, TypeGuard

import pydantic

from receiver.incidents.lifecycle import Signal
from receiver.notify import failures
from receiver.notify.channel import ChannelSettingsBase, ChannelType, Io, Replay
from receiver.notify.channels.endpoint import Document, EndpointChannel, fitted
from receiver.notify.content import Compose, Markup, Message, one_line, truncate
from receiver.notify.http import Response
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent, Skipped
from receiver.notify.pagerduty_webhooks import came_from_pagerduty

ENQUEUE = "/v2/enqueue"
MAX_EVENT_BYTES = 512_000
"""PagerDuty's "512 KB" an event, read as the smaller 512,000 bytes."""
MAX_SUMMARY = 1024
MAX_FIELD = 255
"""What this channel puts in ``class`` and ``component``, and each service name (PagerDuty states no limit)."""
MAX_SERVICES = 50
ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")
ACTIONS: Mapping[Signal, str] = {
    Signal.OPENED: "trigger",
    Signal.ESCALATED: "trigger",
    Signal.PAGED: "trigger",
    Signal.SERVICES_JOINED: "trigger",
    Signal.REOPENED: "trigger",
    Signal.TEST: "trigger",
    Signal.ACKNOWLEDGED: "acknowledge",
    Signal.RESOLVED: "resolve",
}
"""The event each signal sends; the other signals send nothing."""
FOLLOWED = frozenset({Signal.ACKNOWLEDGED, Signal.RESOLVED})
"""What PagerDuty may tell us of (webhooks) as well as hear from us."""
SEVERITIES: Mapping[str, str] = {"SEV1": "critical", "SEV2": "error", "SEV3": "warning", "SEV4": "info"}
UNCLASSIFIED = "warning"
"""PagerDuty's severity of an incident not classified yet."""
REDACTED = "<routing key>"


class PagerDutySettings(ChannelSettingsBase):
    """``notify.channels.<name>`` of ``type: pagerduty``: one PagerDuty service's Events API v2 integration."""

    type: Literal["pagerduty"]
    routing_key: pydantic.SecretStr
    """The integration key (32 letters and digits); ``env:NAME`` keeps it out of the file."""
    api_url: str = "https://events.pagerduty.com"
    """Events are posted to ``{api_url}/v2/enqueue`` (EU accounts: https://events.eu.pagerduty.com)."""
    source: str = "receiver"
    """``payload.source``: what PagerDuty shows as the affected system."""
    client: str = "receiver"
    """``client``: the name PagerDuty shows for the sender, linked to the incident's page."""
    webhook_secret: pydantic.SecretStr | None = None
    """A v3 webhook subscription's secret (``env:NAME``): ``POST /api/v1/pagerduty/webhooks`` accepts what it signs."""

    @pydantic.field_validator("routing_key")
    @classmethod
    def _routing_key(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
        """32 letters and digits, as PagerDuty issues them; the error never repeats the key."""
        if not ROUTING_KEY.fullmatch(value.get_secret_value()):
            raise ValueError("a PagerDuty routing (integration) key is 32 letters and digits")
        return value

    @pydantic.field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/?#\s]+", value.rstrip("/")):
            raise ValueError("an http(s) URL of the Events API host, without a path (https://events.pagerduty.com)")
        return value.rstrip("/")

    @pydantic.field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: pydantic.SecretStr | None) -> pydantic.SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("an empty webhook secret is refused")
        return value

    @pydantic.field_validator("source", "client")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("PagerDuty refuses a blank value")
        return value


def dedup_key(delivery: Delivery) -> str:
    """The incident's id; a test's own key (its alert resolved at once), so it never touches an incident. Pure."""
    if delivery.signal is Signal.TEST:
        return "receiver-test-" + hashlib.sha256(delivery.key.encode()).hexdigest()[:16]
    return delivery.incident


def severity(message: Message) -> str:
    """PagerDuty's severity for the incident's (``warning`` before it is classified). Pure."""
    return SEVERITIES.get(message.severity, UNCLASSIFIED)


def trigger(settings: PagerDutySettings, delivery: Delivery, message: Message) -> dict[str, Any]:
    """The trigger event telling the alert what the incident is now (plain text). Pure."""
    services = [one_line(s, MAX_FIELD) for s in message.services[:MAX_SERVICES]]
    payload: dict[str, Any] = {
        "summary": one_line(message.summary or message.title, MAX_SUMMARY),
        "source": settings.source,
        "severity": severity(message),
        "timestamp": delivery.at.isoformat(),
        "class": one_line(message.title, MAX_FIELD),
        "custom_details": details(delivery, message, services),
    }
    if services:
        payload["component"] = services[0]
        payload["group"] = truncate(", ".join(services), MAX_SUMMARY)
    event: dict[str, Any] = {
        "routing_key": settings.routing_key.get_secret_value(),
        "event_action": "trigger",
        "dedup_key": dedup_key(delivery),
        "payload": payload,
        "client": settings.client,
    }
    links = [{"href": message.link, "text": f"Incident {delivery.incident}"}] if message.link else []
    links += [{"href": a.url, "text": f"{a.label} {delivery.incident}"} for a in message.actions]
    if links:
        event["links"] = links
    if message.link:
        event["client_url"] = message.link
    return event


def details(delivery: Delivery, message: Message, services: list[str]) -> dict[str, Any]:
    """``custom_details``: what PagerDuty shows under the alert, the body at the detail that fits. Pure."""
    more = len(message.services) - len(services)
    return {
        "incident": delivery.incident,
        "status": message.status,
        "severity": message.severity or "unclassified",
        "services": services + ([f"… and {more} more"] if more > 0 else []),
        "event": one_line(message.event, MAX_SUMMARY),
        "details": message.body,
    }


def follow_up(settings: PagerDutySettings, delivery: Delivery, action: str) -> dict[str, Any]:
    """An ``acknowledge`` or ``resolve`` event for the delivery's alert. Pure."""
    return {
        "routing_key": settings.routing_key.get_secret_value(),
        "event_action": action,
        "dedup_key": dedup_key(delivery),
    }


def may_have_triggered(result: Result) -> TypeGuard[Sent | Failed]:
    """Whether a trigger's outcome may have opened an alert (sent, or no answer to it). Pure."""
    return isinstance(result, Sent) or (isinstance(result, Failed) and result.maybe_sent)


def after_test(triggered: Sent | Failed, resolved: Result, key: str) -> Result:
    """A test's outcome: its trigger's, saying whether its alert was resolved after it. Pure."""
    unresolved = f"resolve the alert {key} in PagerDuty"
    if isinstance(triggered, Failed):
        said = "a resolve was sent in case it arrived" if isinstance(resolved, Sent) else f"if it arrived, {unresolved}"
        return replace(triggered, message=f"{triggered.message}; {said}")
    if isinstance(resolved, Sent):
        return Sent(triggered.provider_id, note="the test alert was triggered, then resolved")
    why = resolved.message if isinstance(resolved, Failed) else resolved.why
    return Sent(triggered.provider_id, note=f"the test alert was triggered but not resolved ({why}): {unresolved}")


def failure(response: Response, routing_key: str) -> Failed | None:
    """What PagerDuty's answer means (None: accepted). An unknown routing key is a 400 a person must fix. Pure."""
    words = answer_words(response).replace(routing_key, REDACTED)
    if response.status == 400 and "invalid routing key" in words.lower():
        return Failed(Reason.AUTH_ERROR, f"HTTP 400: {words}", permanent=True)
    return failures.of_status(response.status, response.headers, words)


def answer_words(response: Response) -> str:
    """PagerDuty's ``message`` and ``errors`` from an answer, or the start of its body. Pure."""
    body = response.json()
    if not isinstance(body, dict):
        return response.text()
    errors = body.get("errors")
    listed = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
    return ": ".join(str(part) for part in (body.get("message", ""), listed) if part)


@dataclass(slots=True)
class PagerDutyChannel(EndpointChannel[PagerDutySettings]):
    """A configured PagerDuty service."""

    kind: str = "pagerduty"
    signals: ClassVar[frozenset[Signal]] = frozenset(ACTIONS)
    replays: ClassVar[Replay] = Replay.SAFE
    """PagerDuty applies an event for a known dedup key to the same alert: sending it again changes nothing."""
    interval: ClassVar[float] = 0.5
    """PagerDuty's Events API takes about 120 events a minute per routing key and answers 429 past it; paced
    at one every half second per key, a storm of joining services never throttles the key (and a new
    incident's page with it)."""

    def identity(self) -> str:
        """The routing key: PagerDuty's rate limit counts events per key."""
        return self.settings.routing_key.get_secret_value()

    def url(self) -> str:
        """``{api_url}/v2/enqueue``."""
        return self.settings.api_url + ENQUEUE

    def document(self, delivery: Delivery, compose: Compose) -> Document:
        """The event: an acknowledge or resolve, or a trigger within PagerDuty's size limit."""
        action = ACTIONS[delivery.signal]
        if action != "trigger":
            return follow_up(self.settings, delivery, action)
        return fitted(compose, Markup.PLAIN, functools.partial(trigger, self.settings, delivery), MAX_EVENT_BYTES)

    async def send(self, delivery: Delivery, compose: Compose, io: Io) -> Result:
        """The delivery's event; a test's alert is resolved right after its trigger (nobody has to).

        Not for an acknowledgement or resolution a PagerDuty webhook made: PagerDuty has it already (no loop).
        """
        if delivery.signal in FOLLOWED and came_from_pagerduty(delivery.actor):
            return Skipped("came from PagerDuty")
        result = await EndpointChannel.send(self, delivery, compose, io)
        if delivery.signal is not Signal.TEST or not may_have_triggered(result):
            return result
        resolved = await self.post(delivery, follow_up(self.settings, delivery, "resolve"), io)
        return after_test(result, resolved, dedup_key(delivery))

    def outcome(self, response: Response, document: Document) -> Result:
        """The dedup key is the provider's id of what was sent."""
        failed = failure(response, self.identity())
        return failed or Sent(provider_id=document["dedup_key"])

    def preview(self, delivery: Delivery, compose: Compose) -> Mapping[str, Any]:
        """The event (a test's trigger and resolve), its routing key hidden."""
        if not self.wants(delivery.signal):
            return EndpointChannel.preview(self, delivery, compose)
        event = {**self.document(delivery, compose), "routing_key": REDACTED}
        if delivery.signal is not Signal.TEST:
            return event
        return {"events": [event, {**follow_up(self.settings, delivery, "resolve"), "routing_key": REDACTED}]}


def build(name: str, settings: PagerDutySettings) -> PagerDutyChannel:
    """The channel ``notify.channels.<name>`` describes."""
    return PagerDutyChannel(name, settings)


TYPE = ChannelType("pagerduty", PagerDutySettings, build)
