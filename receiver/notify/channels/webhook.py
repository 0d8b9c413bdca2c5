"""A generic webhook signed as the Standard Webhooks specification says: for anything else to act on.

Every signal is posted as JSON (``incident.<signal>``) with the incident, the event and the rendered
message, signed with a shared secret (HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.{body}``),
so a receiver can tell it came from us, refuse replays outside its tolerance, and drop duplicates by
``webhook-id``, which is the delivery's idempotency key, the same on every attempt. So a delivery a
crash interrupted is simply sent again. Specification followed (1.0.0):
https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import pydantic

from receiver.incidents.lifecycle import Signal
from receiver.notify import failures
from receiver.notify.channel import ChannelSettingsBase, ChannelType, Replay
from receiver.notify.channels.endpoint import Document, EndpointChannel, fitted
from receiver.notify.content import Compose, Markup, Message
from receiver.notify.http import Response
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent

SECRET_PREFIX = "whsec_"
SECRET_BYTES = (24, 64)
"""The specification's symmetric secret: at least 24 random bytes, at most 512 bits."""
GONE = "HTTP 410: the endpoint is gone (it wants no more webhooks; remove or change this channel)"
ID_SAFE = "/:@"
"""Kept as they are in ``webhook-id`` besides letters, digits and ``-_~``; the rest (``.`` included:
the signed content is delimited by full stops) is percent-encoded."""


def secret_bytes(secret: str) -> bytes:
    """The key a ``whsec_<base64>`` secret stands for; ValueError (never repeating it) when it is not one. Pure."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a Standard Webhooks secret starts with {SECRET_PREFIX!r} (then base64)")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError(f"a Standard Webhooks secret is {SECRET_PREFIX!r} then base64") from None
    low, high = SECRET_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"a Standard Webhooks secret is {low} to {high} random bytes (it has {len(key)})")
    return key


class WebhookSettings(ChannelSettingsBase):
    """``notify.channels.<name>`` of ``type: webhook``: an endpoint taking signed JSON."""

    type: Literal["webhook"]
    url: str
    """Where to POST (https; redirects are not followed)."""
    secret: pydantic.SecretStr
    """``whsec_`` and base64 of 24 to 64 random bytes, shared with the receiver; ``env:NAME`` keeps it out of
    the file."""
    max_bytes: Annotated[int, pydantic.Field(ge=16 * 1024)] = 256 * 1024
    """The largest body sent; a larger message is cut (evidence first, then alerts, then its body)."""

    @pydantic.field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        url = urllib.parse.urlsplit(value)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError("the webhook URL must be an http(s) URL")
        return value

    @pydantic.field_validator("secret")
    @classmethod
    def _secret(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
        secret_bytes(value.get_secret_value())
        return value


def webhook_id(delivery: Delivery) -> str:
    """The delivery's idempotency key, made safe for a header and free of full stops. Pure.

    Keys are ``INC-…/event/channel``: they pass unchanged unless a channel's name has other characters.
    """
    return urllib.parse.quote(delivery.key, safe=ID_SAFE).replace(".", "%2E")


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` and the base64 HMAC-SHA256 of ``{msg_id}.{timestamp}.{body}``. Pure."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def payload(delivery: Delivery, message: Message) -> dict[str, Any]:
    """The event: ``type``, ``timestamp`` and ``data`` as the specification recommends. Pure."""
    return {
        "type": f"incident.{delivery.signal.value}",
        "timestamp": delivery.at.isoformat(),
        "data": {
            "incident": {
                "id": delivery.incident,
                "title": message.title,
                "severity": message.severity,
                "status": message.status,
                "services": list(message.services),
                "link": message.link,
            },
            "event": {
                "signal": delivery.signal.value,
                "text": delivery.text,
                "actor": delivery.actor,
                "at": delivery.at.isoformat(),
            },
            "message": {"summary": message.summary, "body": message.body},
        },
    }


def signed(key: bytes, msg_id: str, now: datetime, body: bytes) -> dict[str, str]:
    """The specification's three headers for a body sent ``now``. Pure."""
    timestamp = int(now.timestamp())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, body),
    }


def failure(response: Response) -> Failed | None:
    """What the endpoint's answer means (None: a 2xx). Pure.

    As the specification advises: a redirect is not followed (a person sets the new URL) and 410 Gone
    means the endpoint wants nothing more; both are permanent.
    """
    words = response.text(200)
    if response.status == 410:
        message = ": ".join(part for part in (GONE, words) if part)
        return Failed(Reason.CLIENT_ERROR, message, permanent=True)
    if 300 <= response.status < 400:
        message = f"HTTP {response.status}: redirects are not followed; set the URL the endpoint moved to"
        return Failed(Reason.CLIENT_ERROR, message, permanent=True)
    return failures.of_status(response.status, response.headers, words)


@dataclass(slots=True)
class WebhookChannel(EndpointChannel[WebhookSettings]):
    """A configured webhook endpoint."""

    kind: str = "webhook"
    signals: ClassVar[frozenset[Signal]] = frozenset(Signal)
    """Everything: the receiver picks what it acts on by ``type``."""
    replays: ClassVar[Replay] = Replay.SAFE
    """Sent again with the same ``webhook-id``, which receivers deduplicate on. No interval between two
    requests: an endpoint that needs one answers 429."""

    def url(self) -> str:
        """The endpoint."""
        return self.settings.url

    def document(self, delivery: Delivery, compose: Compose) -> Document:
        """The event, within ``max_bytes``."""
        return fitted(compose, Markup.PLAIN, functools.partial(payload, delivery), self.settings.max_bytes)

    def headers(self, delivery: Delivery, body: bytes, now: datetime) -> dict[str, str]:
        """The specification's three, signed at the time of sending."""
        return signed(secret_bytes(self.settings.secret.get_secret_value()), webhook_id(delivery), now, body)

    def outcome(self, response: Response, document: Document) -> Result:
        """A 2xx is delivered (the ``webhook-id`` names it); see ``failure``."""
        return failure(response) or Sent()


def build(name: str, settings: WebhookSettings) -> WebhookChannel:
    """The channel ``notify.channels.<name>`` describes."""
    return WebhookChannel(name, settings)


TYPE = ChannelType("webhook", WebhookSettings, build)
