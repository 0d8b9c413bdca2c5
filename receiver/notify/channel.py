"""The one small interface every channel implements, and what a channel type registers.

A channel type is one module in ``receiver.notify.channels`` and one line in its registry: its
settings (a pydantic model with a ``type`` literal, validated with the rest of the configuration), how
to build a channel from them, and the channel itself: which signals it sends, how it renders (its
markup, within its size limit: ``content.fit``), how it sends, how it classifies failures
(``failures``), and whether sending again after a crash is safe (``Replay``). The sender does the rest:
claiming, retries, rate limits, records, metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

import pydantic

from receiver.clock import Clock
from receiver.incidents.lifecycle import Signal
from receiver.notify.content import Audience, Compose
from receiver.notify.http import Http
from receiver.notify.model import Delivery, Result


class Replay(StrEnum):
    """What may be done with a delivery a crash interrupted (it may or may not have reached the provider)."""

    SAFE = "safe"
    """Send it again: the provider takes the same thing twice as once (PagerDuty's dedup key, chat.update,
    a Standard Webhooks id, a Statuspage update of a known incident)."""
    RECONCILE = "reconcile"
    """Look for it at the provider first (a Slack post carries metadata naming its incident and event)."""
    NEVER = "never"
    """It cannot be told whether it arrived (email): marked ``interrupted`` and shown, never sent again."""


@dataclass(frozen=True, slots=True)
class Io:
    """The edges a channel sends through."""

    http: Http
    clock: Clock


class Channel(Protocol):
    """A configured channel (``notify.channels.<name>``)."""

    name: str
    kind: str
    audience: Audience
    """Which templates it is rendered with: ``internal``, or ``external`` (a public status page)."""

    def replay(self, delivery: Delivery) -> Replay:
        """What may be done with this delivery if a crash interrupts it."""
        ...

    def wants(self, signal: Signal) -> bool:
        """Whether it sends anything for this signal (the rest are never written to the outbox for it)."""
        ...

    def rate_key(self, delivery: Delivery) -> str:
        """What the provider's rate limit counts under (a Slack app's channel, a Statuspage API key): equal for
        two deliveries under one limit, whichever configured channels they go through, different for two
        accounts or destinations; never a secret (a digest of it, where the limit counts a credential)."""
        ...

    def min_interval(self) -> float:
        """Seconds between two requests under one ``rate_key`` the provider documents (0: none)."""
        ...

    def destination_problem(self, destination: str) -> str | None:
        """Why a route may not give it ``destination`` (``Target.destination``), or None if it may (the empty
        one, its own, always may). Checked when the configuration loads: a destination is stored and shown
        with every notification, so it is never a credential, and each channel says what it takes (mail
        addresses, a Slack channel's id) or that it takes none (an endpoint, a status page)."""
        ...

    def preview(self, delivery: Delivery, compose: Compose) -> Mapping[str, Any]:
        """What ``send`` would send, as JSON-able values (``receiver notify preview``); nothing is sent."""
        ...

    async def send(self, delivery: Delivery, compose: Compose, io: Io) -> Result:
        """Deliver it; never raises for the provider's failures (they are ``Failed``), only for bugs."""
        ...


class ChannelSettingsBase(pydantic.BaseModel):
    """What every channel's settings share: strict (an unknown key is an error naming its path), frozen.

    A secret (a token, a routing key, a password) may be written ``env:NAME``: ``receiver.config.load``
    puts the environment variable's value there, so the file itself can be shown to anyone.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


S = TypeVar("S", bound=ChannelSettingsBase)


@dataclass(frozen=True, slots=True)
class ChannelType(Generic[S]):
    """A channel type's registration: its ``type`` name, settings model, and how to build one."""

    kind: str
    settings: type[S]
    build: Callable[[str, S], Channel]
    """(the channel's name in the configuration, its settings) -> the channel."""
