"""Correlation: which incident an alert belongs to, when an incident resolves, what is a cascade.

Alerts belong together when they share the labels of a correlation rule
(``[namespace, service]``, ``[cluster]``...): that set of values is the
alert's *scope*. The first rule whose labels the alert carries decides; an
alert that fits no rule is a scope of its own. Labels are read without the
exporter's identity (``subject.subject_labels``), and a rule may ask for a
kind of subject: by default an alert about a node is scoped by its node,
never by the namespace of the kube-state-metrics that reported it. Every function here is pure:
it takes what is known of the scope's incidents and ``now``, and returns a
decision that the engine applies and records in the timeline.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from receiver.incidents.subject import SubjectPolicy, subject_labels, subject_of


@dataclass(frozen=True, slots=True)
class CorrelationRule:
    """Alerts with equal values of ``labels`` belong together."""

    name: str
    labels: tuple[str, ...]
    subject: str | None = None
    """Only for alerts whose subject is of this kind (``node``); None: any alert carrying the labels."""


@dataclass(frozen=True, slots=True)
class CorrelationPolicy:
    """The configuration of correlation; defaults as the issue asks."""

    rules: tuple[CorrelationRule, ...] = (
        CorrelationRule("node", ("node",), subject="node"),
        CorrelationRule("namespace", ("namespace",)),
        CorrelationRule("cluster", ("cluster",)),
    )
    """By default an incident per node for node alerts, per namespace (services of one team fail together),
    else per cluster."""
    window: timedelta = timedelta(minutes=5)
    """A quiet incident (nothing firing) still takes new alerts for this long after its last activity."""
    quiet_period: timedelta = timedelta(minutes=5)
    """An incident resolves when nothing has fired in it for this long."""
    reopen_window: timedelta = timedelta(minutes=30)
    """An alert firing this soon after its scope's incident resolved reopens it."""
    cascade_alerts: int = 5
    cascade_services: int = 1
    """More than ``cascade_alerts`` distinct firing alerts across more than ``cascade_services``
    services (subjects) within ``window`` make a cascade."""
    subject: SubjectPolicy = field(default_factory=SubjectPolicy)


@dataclass(frozen=True, slots=True)
class Scope:
    """The correlation rule that grouped an alert, and its values of that rule's labels."""

    rule: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.rule}:{','.join(self.values)}"


def scope_of(fingerprint: str, labels: Mapping[str, str], policy: CorrelationPolicy) -> Scope:
    """The scope of an alert: the first rule whose labels it carries (non-empty), else its own. Pure.

    The exporter's identity is not the alert's (``subject.subject_labels``); a rule for a kind of subject
    applies only to alerts about one.
    """
    own = subject_labels(labels, policy.subject)
    kind = None
    for rule in policy.rules:
        if rule.subject is not None:
            if kind is None:
                found = subject_of(labels, policy.subject)
                kind = found.kind if found else ""
            if kind != rule.subject:
                continue
        values = tuple(own.get(name, "") for name in rule.labels)
        if all(values):
            return Scope(rule.name, values)
    return Scope("alert", (fingerprint,))


@dataclass(frozen=True, slots=True)
class IncidentView:
    """What correlation needs to know of one incident of a scope."""

    id: str
    resolved_at: datetime | None
    last_activity: datetime
    """When an alert of it last fired or changed."""
    firing: int
    """How many of its alerts fire now (resolved and expired ones do not count)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a firing alert goes: ``join`` or ``reopen`` an incident (``incident``), or ``open`` one."""

    action: Literal["join", "reopen", "open"]
    incident: str | None
    reason: str


def place(incidents: Sequence[IncidentView], now: datetime, policy: CorrelationPolicy) -> Placement:
    """Where a new firing alert goes, given its scope's incidents (any order). Pure."""
    open_ = [i for i in incidents if i.resolved_at is None]
    for incident in sorted(open_, key=lambda i: i.last_activity, reverse=True):
        if incident.firing:
            return Placement("join", incident.id, f"{incident.id} is open with {incident.firing} alerts firing")
        if now - incident.last_activity <= policy.window:
            return Placement("join", incident.id, f"{incident.id} is open, last activity within {policy.window}")
    resolved = [i for i in incidents if i.resolved_at is not None]
    if resolved:
        last = max(resolved, key=lambda i: (i.resolved_at, i.id))
        assert last.resolved_at is not None
        if now - last.resolved_at <= policy.reopen_window:
            ago = now - last.resolved_at
            return Placement("reopen", last.id, f"{last.id} resolved {ago} ago, within the reopen window")
    return Placement("open", None, "no open or recently resolved incident in this scope")


def should_resolve(incident: IncidentView, now: datetime, policy: CorrelationPolicy) -> bool:
    """Whether an open incident resolves now: nothing firing, and quiet for the quiet period. Pure."""
    return incident.resolved_at is None and not incident.firing and now - incident.last_activity >= policy.quiet_period


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """A firing alert of a scope, for cascade detection."""

    fingerprint: str
    labels: Mapping[str, str]
    fired_at: datetime


def is_cascade(firing: Collection[FiringAlert], now: datetime, policy: CorrelationPolicy) -> bool:
    """More than N distinct alerts across more than M services fired within the window. Pure.

    Only alerts firing now count: a resolved alert is not passed in.
    """
    recent = {a.fingerprint: a for a in firing if now - a.fired_at <= policy.window}
    services = {service_of(a.labels, policy) for a in recent.values()} - {""}
    return len(recent) > policy.cascade_alerts and len(services) > policy.cascade_services


def service_of(labels: Mapping[str, str], policy: CorrelationPolicy) -> str:
    """The affected service an alert counts as (its subject's key), or "" when it names none. Pure."""
    subject = subject_of(labels, policy.subject)
    return subject.key if subject else ""
