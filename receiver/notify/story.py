"""Everything a notification may say about an incident, as plain values read at send time.

The sender reads the incident as it is when a delivery is sent (not when it was written: a message
pending while ten more alerts join says so, which is how changes merge), and the templates render
this. Pure values; label and annotation values in it are untrusted text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from receiver.incidents.lifecycle import Signal


@dataclass(frozen=True, slots=True)
class AlertLine:
    """One alert of the incident."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    firing: bool
    severity: str
    """Its own severity (``SEV3``)."""
    role: str
    """``alert`` or ``symptom`` (of a root cause elsewhere in the incident)."""
    fired_at: datetime
    service: str = ""


@dataclass(frozen=True, slots=True)
class RunLine:
    """A playbook run of the incident."""

    id: int
    playbook: str
    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EvidenceLine:
    """Evidence captured for one of its alerts."""

    outcome: str
    summary: str


@dataclass(frozen=True, slots=True)
class EventLine:
    """A timeline entry."""

    at: datetime
    kind: str
    text: str
    actor: str


@dataclass(frozen=True, slots=True)
class ActionLink:
    """A signed link that acts on the incident for the person it was sent to (``receiver.oncall.links``)."""

    action: str
    """``ack`` or ``resolve``."""
    label: str
    """``Acknowledge`` or ``Resolve``."""
    url: str


@dataclass(frozen=True, slots=True)
class Happening:
    """What this notification is about."""

    signal: Signal
    text: str
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Story:
    """An incident as a notification tells it."""

    id: str
    title: str
    severity: str
    """``SEV1``..``SEV4``; empty before it is classified."""
    reasons: tuple[str, ...]
    status: str
    services: tuple[str, ...]
    detected_at: datetime
    happening: Happening
    link: str = ""
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""
    """Who acknowledged it (the last acknowledgement in its timeline), while it is acknowledged or after."""
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    next_update_at: datetime | None = None
    """When the next status update is due (the update cadence), while it is open."""
    alerts: tuple[AlertLine, ...] = ()
    runs: tuple[RunLine, ...] = ()
    evidence: tuple[EvidenceLine, ...] = ()
    timeline: tuple[EventLine, ...] = ()
    firing: int = 0
    """How many of its alerts fire."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Anything else a template may use (the status update's text under ``update``)."""
    actions: tuple[ActionLink, ...] = ()
    """Signed acknowledge/resolve links for whoever this delivery goes to (none when links are not configured,
    nothing is left to do, or the audience is external)."""
