"""Incidents: their identity, their lifecycle, and the typed events of their timeline.

An incident moves ``triggered`` -> ``acknowledged`` -> ``mitigated`` ->
``resolved``; acknowledging or mitigating can be skipped, a resolved
incident can be reopened (back to ``triggered``) when its scope fires again,
and nothing else is allowed: an impossible transition raises
``InvalidTransition`` (the API answers 409). Every change is a timeline event
with the time and the reason. Pure values and functions; the engine stores
them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class IncidentStatus(StrEnum):
    """Where an incident stands."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


class EventKind(StrEnum):
    """What a timeline entry records. Bounded: safe as a metric label."""

    ALERT_FIRED = "alert_fired"
    ALERT_RESOLVED = "alert_resolved"
    CORRELATED = "correlated"
    SUPPRESSED = "suppressed"
    CLASSIFIED = "classified"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    NOTE = "note"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    REMEDIATION = "remediation"
    """A playbook run started, ended, was blocked, awaits approval."""
    EVIDENCE = "evidence"
    """Evidence of an alert was captured from the cluster (or why it could not be)."""
    NOTIFICATION = "notification"
    """A notification was sent, failed, or was interrupted (or an update reminder was due)."""
    ESCALATION = "escalation"
    """A step of an escalation policy fired (whom it paged, how), or the escalation ended unacknowledged."""


class Signal(StrEnum):
    """Something about an incident that people may be told of (``receiver.notify`` decides who and how).

    Bounded: safe as a metric label. The book raises the first ten as it changes incidents; the engine
    raises the rest (playbook runs, status updates, update reminders, a playbook's ``notify`` step).
    """

    OPENED = "opened"
    ESCALATED = "escalated"
    """The severity worsened."""
    DEESCALATED = "deescalated"
    SERVICES_JOINED = "services_joined"
    """A service the incident did not span fires in it now."""
    ALERTS_CHANGED = "alerts_changed"
    """Alerts fired or resolved in it: what a living message shows changed, nobody needs a new message."""
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    NOTE = "note"
    RUN_BLOCKED = "run_blocked"
    RUN_AWAITING_APPROVAL = "run_awaiting_approval"
    RUN_FAILED = "run_failed"
    STATUS_UPDATE = "status_update"
    """A person's status update (``POST /api/v1/incidents/{id}/updates``), for every channel of the incident."""
    REMINDER = "reminder"
    """The incident's next update is overdue."""
    STEP = "step"
    """A playbook's ``notify`` step."""
    PAGED = "paged"
    """A step of an escalation policy pages a person (or a channel) (``receiver.notify.escalation``)."""
    TEST = "test"
    """``receiver notify test``."""


_S = IncidentStatus
_ALLOWED = {
    _S.TRIGGERED: {_S.ACKNOWLEDGED, _S.MITIGATED, _S.RESOLVED},
    _S.ACKNOWLEDGED: {_S.MITIGATED, _S.RESOLVED},
    _S.MITIGATED: {_S.RESOLVED},
    _S.RESOLVED: {_S.TRIGGERED},
}
SIGNAL_FOR = {
    _S.ACKNOWLEDGED: Signal.ACKNOWLEDGED,
    _S.MITIGATED: Signal.MITIGATED,
    _S.RESOLVED: Signal.RESOLVED,
    _S.TRIGGERED: Signal.REOPENED,
}
"""What moving to each status tells people."""
_EVENT_FOR = {
    _S.ACKNOWLEDGED: EventKind.ACKNOWLEDGED,
    _S.MITIGATED: EventKind.MITIGATED,
    _S.RESOLVED: EventKind.RESOLVED,
    _S.TRIGGERED: EventKind.REOPENED,
}


class InvalidTransition(ValueError):
    """The incident cannot go from its status to the one asked (resolve twice, acknowledge a resolved one)."""


def incident_id(day: datetime, number: int) -> str:
    """``INC-20261122-0001``: the day it was detected (UTC) and its number that day, from 1. Pure."""
    if number < 1:
        raise ValueError("incident numbers start at 1")
    return f"INC-{day:%Y%m%d}-{number:04d}"


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One entry of an incident's timeline."""

    at: datetime
    kind: EventKind
    text: str
    actor: str = "receiver"
    fingerprint: str | None = None
    """The alert the event is about, if any."""


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """An incident's status and the times it reached each, for MTTA and MTTR."""

    status: IncidentStatus
    detected_at: datetime
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def time_to_acknowledge(self) -> float | None:
        """Seconds from detection to acknowledgement, once acknowledged."""
        return None if self.acknowledged_at is None else (self.acknowledged_at - self.detected_at).total_seconds()

    @property
    def time_to_resolve(self) -> float | None:
        """Seconds from detection to resolution, once resolved."""
        return None if self.resolved_at is None else (self.resolved_at - self.detected_at).total_seconds()


def transition(
    lifecycle: Lifecycle, to: IncidentStatus, now: datetime, reason: str, actor: str = "receiver"
) -> tuple[Lifecycle, TimelineEvent]:
    """The lifecycle after moving to ``to``, and the event that records it. Raises InvalidTransition. Pure."""
    if to not in _ALLOWED[lifecycle.status]:
        raise InvalidTransition(f"an incident that is {lifecycle.status} cannot become {to}")
    if to is IncidentStatus.TRIGGERED:  # reopened: a new episode of the same incident
        moved = replace(lifecycle, status=to, acknowledged_at=None, mitigated_at=None, resolved_at=None)
    else:
        moved = replace(lifecycle, status=to, **{f"{to.value}_at": now})
    return moved, TimelineEvent(now, _EVENT_FOR[to], reason, actor)
