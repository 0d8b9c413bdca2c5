"""What the channels that POST one JSON document to one HTTP endpoint share (PagerDuty, Teams, webhooks).

Such a channel is mostly data (its kind, the signals it sends, whether sending again after a crash is
safe, its pace) and three decisions of its own: the document for a delivery, the endpoint's URL and
headers, and what an answer means. This base does the rest the same way for each: the document fitted
to the provider's byte limit (``content.fit``), posted once, no answer made a temporary failure that
never shows the URL (it may carry a credential) and says whether the request may have arrived
(``maybe_sent``), a signal the channel does not send skipped, the endpoint named for rate limits by a
digest of what identifies it, and a route's destination refused: an endpoint and its credentials are a
channel's settings, and a destination is stored and shown with every notification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

import orjson

from receiver.incidents.lifecycle import Signal
from receiver.notify.channel import ChannelSettingsBase, Io, Replay
from receiver.notify.content import Audience, Compose, Markup, Message, fit
from receiver.notify.http import Response, Unreachable
from receiver.notify.model import Delivery, Failed, Reason, Result, Skipped

S = TypeVar("S", bound=ChannelSettingsBase)
Document = dict[str, Any]


def encoded(document: Mapping[str, Any]) -> bytes:
    """The bytes sent, measured against the limit (and signed, where the channel signs)."""
    return orjson.dumps(document)


def digest(identity: str) -> str:
    """A short stable name for something secret (a routing key, a URL with a signature). Pure."""
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


@dataclass(slots=True)
class EndpointChannel(Generic[S]):
    """A configured channel posting JSON; a subclass sets the class data and the methods that raise here."""

    name: str
    settings: S
    kind: str = ""
    audience: Audience = "internal"

    signals: ClassVar[frozenset[Signal]] = frozenset(Signal)
    """The signals it sends anything for."""
    replays: ClassVar[Replay] = Replay.NEVER
    """What may be done with a delivery a crash interrupted."""
    interval: ClassVar[float] = 0.0
    """Seconds between two requests the provider documents."""

    def url(self) -> str:
        """Where to POST."""
        raise NotImplementedError

    def identity(self) -> str:
        """What identifies the endpoint (its URL, unless a key does); only its digest is ever shown."""
        return self.url()

    def document(self, delivery: Delivery, compose: Compose) -> Document:
        """What to send for the delivery (within the provider's limit: ``fitted``)."""
        raise NotImplementedError

    def outcome(self, response: Response, document: Document) -> Result:
        """What the provider's answer means."""
        raise NotImplementedError

    def headers(self, delivery: Delivery, body: bytes, now: datetime) -> dict[str, str]:
        """Headers besides ``Content-Type`` (a signature, say); none by default."""
        return {}

    def replay(self, delivery: Delivery) -> Replay:
        """The channel's ``replays``, whatever the delivery."""
        return self.replays

    def wants(self, signal: Signal) -> bool:
        """Whether the signal is one of the channel's ``signals``."""
        return signal in self.signals

    def rate_key(self, delivery: Delivery) -> str:
        """The endpoint, by a digest of what identifies it."""
        return f"{self.kind}:{digest(self.identity())}"

    def min_interval(self) -> float:
        """The channel's ``interval``."""
        return self.interval

    def preview(self, delivery: Delivery, compose: Compose) -> Mapping[str, Any]:
        """The document ``send`` would post (or why it would post nothing)."""
        if not self.wants(delivery.signal):
            return {"skipped": f"a {self.kind} channel sends nothing for {delivery.signal.value}"}
        return self.document(delivery, compose)

    def destination_problem(self, destination: str) -> str | None:
        """Any destination is one: the endpoint and its credentials are the channel's settings."""
        return self._no_destination() if destination else None

    async def send(self, delivery: Delivery, compose: Compose, io: Io) -> Result:
        """Post the delivery's document once (nothing for a signal it does not send)."""
        if delivery.target.destination:
            return Failed(Reason.CLIENT_ERROR, self._no_destination(), permanent=True)
        if not self.wants(delivery.signal):
            return Skipped(f"a {self.kind} channel sends nothing for {delivery.signal.value}")
        try:
            document = self.document(delivery, compose)
        except ValueError as err:  # nothing fits (content.fit)
            return Failed(Reason.CLIENT_ERROR, str(err), permanent=True)
        return await self.post(delivery, document, io)

    async def post(self, delivery: Delivery, document: Document, io: Io) -> Result:
        """Post ``document`` once; what the answer (or its absence) means."""
        body = encoded(document)
        headers = {"Content-Type": "application/json", **self.headers(delivery, body, io.clock())}
        url = self.url()
        try:
            response = await io.http.request("POST", url, data=body, headers=headers)
        except Unreachable as err:
            return Failed(err.reason, str(err).replace(url, "<endpoint URL>"), maybe_sent=err.maybe_sent)
        return self.outcome(response, document)

    def _no_destination(self) -> str:
        return (
            f"a {self.kind} channel takes no destination (a route's destination is stored and shown with every "
            "notification, and an endpoint's credentials are its channel's settings): configure one channel per "
            "endpoint"
        )


def fitted(compose: Compose, markup: Markup, build: Callable[[Message], Document], limit: int) -> Document:
    """The richest document ``build`` makes whose JSON is at most ``limit`` bytes (``content.fit``)."""
    return fit(compose, markup, build, lambda document: len(encoded(document)), limit)
