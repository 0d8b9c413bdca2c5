"""Deduplication: what one received alert update means, given what we knew.

Alertmanager delivers at least once: HA peers send the same notification,
``repeat_interval`` re-sends it, retries overlap, and peers can deliver out of
order. ``decide`` turns (what the store knew, the update, now) into a
``Decision``: the state to keep and the outcome, of which only ``fired``,
``resolved`` and ``resolved_unseen`` are news for the engine. A decision whose
state is the very ``prev`` it was given changes nothing, and nothing is
written. Everything here is pure; the store applies decisions inside its
transaction.

An update is identified by (fingerprint, status, startsAt, endsAt). An
episode of an alert is identified by its startsAt: Alertmanager gives an alert
that fires again after resolving a new startsAt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from receiver.alerts.wire import Alert


class Status(StrEnum):
    """What the receiver believes about an alert now."""

    FIRING = "firing"
    RESOLVED = "resolved"
    EXPIRED = "expired"
    """Was firing, but no update came for ``expire_after``: a resolve was lost."""


class Outcome(StrEnum):
    """What an update meant. Bounded: safe as a metric label."""

    FIRED = "fired"
    RESOLVED = "resolved"
    RESOLVED_UNSEEN = "resolved_unseen"
    """Resolved, but never seen firing in this episode: recorded, triggers nothing."""
    UPDATED = "updated"
    """Same episode and status, another endsAt: kept, but no news."""
    DUPLICATE = "duplicate"
    STALE = "stale"
    """Older than what is known (a late HA peer or retry): ignored."""


NEWS = frozenset({Outcome.FIRED, Outcome.RESOLVED, Outcome.RESOLVED_UNSEEN})


@dataclass(frozen=True, slots=True)
class DedupPolicy:
    """How long silence means a lost resolve, and what counts as flapping."""

    expire_after: timedelta = timedelta(hours=36)
    flap_threshold: int = 4
    """An alert whose status flipped more than this many times in the window flaps."""
    flap_window: timedelta = timedelta(hours=1)
    seen_resolution: timedelta = timedelta(minutes=1)
    """A duplicate moves ``last_seen`` only once it is this much newer: HA peers and re-sends
    then cost no write at all, and expiry (hours) is not affected by a minute."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """What dedup tracks about one alert (one fingerprint); its labels live beside it."""

    fingerprint: str
    status: Status
    starts_at: datetime
    ends_at: datetime | None
    first_seen: datetime
    last_seen: datetime
    """Last time any update arrived, duplicates included (to ``seen_resolution``): proof of life."""
    last_changed: datetime
    flips: tuple[datetime, ...] = ()
    """When the status flipped between firing and resolved, newest last, pruned."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one update and the state to store after it."""

    outcome: Outcome
    state: AlertState
    became_flapping: bool = False

    @property
    def is_news(self) -> bool:
        """Whether the engine must hear of this update."""
        return self.outcome in NEWS


def decide(prev: AlertState | None, alert: Alert, now: datetime, policy: DedupPolicy) -> Decision:
    """Decide what ``alert`` means given the known state ``prev``. Pure."""
    if prev is None:
        outcome = Outcome.FIRED if alert.status == "firing" else Outcome.RESOLVED_UNSEEN
        return Decision(outcome, _fresh_state(alert, now))
    if _is_stale(prev, alert):
        return Decision(Outcome.STALE, prev)
    if _same_update(prev, alert) and prev.status is not Status.EXPIRED:
        fresh_enough = now - prev.last_seen < policy.seen_resolution
        return Decision(Outcome.DUPLICATE, prev if fresh_enough else replace(prev, last_seen=now))
    outcome = _transition(prev, alert)
    flipped = _was_firing(prev) != (alert.status == "firing")
    flips = _prune((*prev.flips, now) if flipped else prev.flips, now, policy)
    state = _updated_state(prev, alert, now, flips)
    became = is_flapping(state, now, policy) and not is_flapping(prev, now, policy)
    return Decision(outcome, state, became_flapping=became)


def is_flapping(state: AlertState, now: datetime, policy: DedupPolicy) -> bool:
    """Whether the alert flipped more than the threshold within the window. Pure."""
    return len(_prune(state.flips, now, policy)) > policy.flap_threshold


def expiry_cutoff(now: datetime, policy: DedupPolicy) -> datetime:
    """Firing alerts last seen before this instant are expired. Pure."""
    return now - policy.expire_after


def _is_stale(prev: AlertState, alert: Alert) -> bool:
    if alert.starts_at != prev.starts_at:
        return alert.starts_at < prev.starts_at
    # Same episode: once resolved, a firing update can only be a late one.
    return prev.status is Status.RESOLVED and alert.status == "firing"


def _same_update(prev: AlertState, alert: Alert) -> bool:
    return (
        _was_firing(prev) == (alert.status == "firing")
        and prev.starts_at == alert.starts_at
        and prev.ends_at == alert.ends_at
    )


def _was_firing(state: AlertState) -> bool:
    return state.status is not Status.RESOLVED


def _transition(prev: AlertState, alert: Alert) -> Outcome:
    if alert.status == "firing":
        return Outcome.FIRED
    if prev.starts_at != alert.starts_at:
        return Outcome.RESOLVED_UNSEEN
    if prev.status is Status.RESOLVED:
        return Outcome.UPDATED
    return Outcome.RESOLVED


def _prune(flips: tuple[datetime, ...], now: datetime, policy: DedupPolicy) -> tuple[datetime, ...]:
    recent = tuple(f for f in flips if f > now - policy.flap_window)
    return recent[-(policy.flap_threshold + 1) :]


def _fresh_state(alert: Alert, now: datetime) -> AlertState:
    return AlertState(
        fingerprint=alert.fingerprint,
        status=Status(alert.status),
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        first_seen=now,
        last_seen=now,
        last_changed=now,
    )


def _updated_state(prev: AlertState, alert: Alert, now: datetime, flips: tuple[datetime, ...]) -> AlertState:
    return replace(
        _fresh_state(alert, now),
        first_seen=prev.first_seen,
        flips=flips,
    )
