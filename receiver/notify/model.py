"""The outbox's values: intents, deliveries, outcomes, and how a failure is classified.

An intent is written in the transaction of the incident change that causes it, keyed by (incident,
event, channel, destination): replaying the change adds nothing. The sender claims due rows as
``Delivery`` values, hands each to its channel, and records the channel's ``Result``. Failure reasons
mirror Alertmanager's notifier (``alertmanager_notifications_failed_total{reason}``), with the two it
folds into ``clientError`` (authentication, rate limits) told apart because people act on them
differently. Pure values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from receiver.incidents.lifecycle import Signal


class Reason(StrEnum):
    """Why a send failed. Bounded: the ``reason`` label of ``receiver_notifications_failed_total``."""

    CLIENT_ERROR = "client_error"
    """The provider refused what was sent (4xx, ``ok: false``): sending it again fails again."""
    SERVER_ERROR = "server_error"
    """The provider failed (5xx): temporary."""
    AUTH_ERROR = "auth_error"
    """The credentials are wrong or lack a permission (401, 403, ``invalid_auth``): a person must fix them."""
    RATE_LIMITED = "rate_limited"
    """Too many requests (429, Statuspage's 420): sent again after ``Retry-After`` or the channel's rate."""
    TIMEOUT = "timeout"
    OTHER = "other"
    """The connection failed, or anything else: temporary."""


class State(StrEnum):
    """Where an outbox row stands."""

    PENDING = "pending"
    """Due at its ``next_attempt_at`` (now, or after a backoff or a rate limit)."""
    SENDING = "sending"
    """Claimed by the sender; a row still sending when the engine starts was interrupted by a crash."""
    SENT = "sent"
    FAILED = "failed"
    """A permanent failure, or temporary ones past the attempts allowed: shown, never retried by itself."""
    INTERRUPTED = "interrupted"
    """The engine stopped while sending it, and sending it again could send it twice (email): shown."""
    SKIPPED = "skipped"
    """The channel has nothing to send for this event (PagerDuty and a note, say)."""


FINAL = frozenset({State.SENT, State.FAILED, State.INTERRUPTED, State.SKIPPED})


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """Where a notification goes: a configured channel and, if its route says, another destination in it."""

    channel: str
    destination: str = ""
    """A Slack channel id, an email address list, ...; empty: the channel's own."""

    def __str__(self) -> str:
        return f"{self.channel}:{self.destination}" if self.destination else self.channel

    @classmethod
    def parse(cls, text: str) -> Target:
        """``name`` or ``name:destination``."""
        channel, _, destination = text.partition(":")
        return cls(channel, destination)


@dataclass(frozen=True, slots=True)
class Intent:
    """A notification to write to the outbox, in the transaction of the change that causes it."""

    incident: str
    signal: Signal
    event: str
    """Names the event within its incident (``opened``, ``acknowledged@<micros>``): the idempotency key's part."""
    target: Target
    kind: str
    """The channel's type (``slack``): how the sender recovers a row a crash interrupted."""
    text: str
    """What happened, one line (the timeline's text)."""
    actor: str
    at: datetime
    mergeable: bool = False
    """An ``alerts_changed`` refresh: dropped when a row of the same incident and target is still pending."""
    route: str = ""
    """The route that gave the incident this target (its templates render it)."""
    due: datetime | None = None
    """When it is first due, if later than its writing (a person's later contact rule: email after 5m)."""

    @property
    def key(self) -> str:
        """The idempotency key: (incident, event, channel, destination)."""
        return f"{self.incident}/{self.event}/{self.target}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox row the sender claimed: what its channel is asked to deliver."""

    id: int
    key: str
    incident: str
    signal: Signal
    target: Target
    kind: str
    text: str
    actor: str
    at: datetime
    created_at: datetime
    attempts: int
    """Attempts so far, this one included."""
    thread: Mapping[str, str] = field(default_factory=dict)
    """What earlier deliveries to this incident and target left (a Slack ``ts``, a Statuspage incident id)."""
    resumed: bool = False
    """An earlier attempt was interrupted by a crash: it may have reached the provider (reconcile first)."""
    route: str = ""
    """The route that gave the incident this target (its templates render it)."""


PERSON_ROUTE = "person:"
"""The ``route`` of a delivery that pages one person: ``person:<name>`` (escalation writes these)."""


def paged_person(route: str) -> str | None:
    """The person a delivery pages when its ``route`` is ``person:<name>``, else None. Pure."""
    name = route.removeprefix(PERSON_ROUTE) if route.startswith(PERSON_ROUTE) else ""
    return name or None


@dataclass(frozen=True, slots=True)
class Sent:
    """Delivered."""

    provider_id: str = ""
    """The provider's id of what was sent (Slack ``ts``, PagerDuty dedup key, Statuspage incident id)."""
    thread: Mapping[str, str] = field(default_factory=dict)
    """To keep for later deliveries of this incident and target (merged into what is kept)."""
    note: str = ""
    """Worth saying (``found the message posted before the crash``)."""


@dataclass(frozen=True, slots=True)
class Failed:
    """Not delivered."""

    reason: Reason
    message: str
    retry_after: float | None = None
    """Seconds the provider asked to wait (``Retry-After``), or the channel's documented rate."""
    permanent: bool = False
    """Sending the same again cannot succeed (a client or authentication error)."""
    maybe_sent: bool = False
    """The request may have reached the provider: no answer came (a timeout, a connection dropped after the
    request was written). The sender reconciles before sending again, or marks it ``interrupted`` when the
    channel cannot tell (email)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """The channel sends nothing for this event."""

    why: str


Result = Sent | Failed | Skipped


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """An outbox row as the API and the timeline show it."""

    id: int
    key: str
    incident: str
    signal: Signal
    target: Target
    kind: str
    state: State
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None = None
    last_error: str = ""
    reason: Reason | None = None
    provider_id: str = ""
    merged: int = 0
    """Later changes merged into it while it was pending (a storm is a handful of sends)."""
