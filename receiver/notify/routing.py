"""Routes: which channels hear of an incident, decided like Alertmanager's routes.

A route has matchers on the incident and the channels it sends to. Routes are tried in order; the
first that matches decides, unless it says ``continue``, in which case the next ones are tried too
(Alertmanager's ``continue``). Matchers see the incident as labels: ``severity`` (``SEV1``..),
``status`` (``triggered``..), ``service`` (true when any of its services matches, or for ``!=`` and
``!~`` when none does), and the labels of the alert that opened it (``namespace``, ``cluster``...).

An incident keeps every channel a route ever gave it (a SEV3 that becomes SEV1 adds PagerDuty; PagerDuty
still hears the resolution after it falls back to SEV3): ``planning`` adds, never removes.

Without configured routes, ``default_routes`` follows incident-response practice: SEV1 to PagerDuty,
the Slack incident channel and the status page; SEV2 to PagerDuty and Slack; SEV3 to Slack and email;
SEV4 to the Slack team channel only. They name the channels by convention (``pagerduty``, ``slack``,
``statuspage``, ``email``, ``slack-team``), and a channel that is not configured is left out. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from receiver.alerts.matchers import Matcher, parse
from receiver.notify.model import Target


@dataclass(frozen=True, slots=True)
class Route:
    """Matchers on the incident, and where it goes when they match."""

    name: str
    matchers: tuple[Matcher, ...]
    targets: tuple[Target, ...]
    proceed: bool = False
    """Alertmanager's ``continue``: try the following routes as well."""
    templates: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """audience -> template name -> source, overriding the shipped ones for what this route sends."""


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What routes match on."""

    severity: str
    status: str
    services: frozenset[str]
    labels: Mapping[str, str]


def routed(facts: IncidentFacts, routes: Sequence[Route]) -> list[tuple[Target, str]]:
    """The targets the incident goes to, each with the route that chose it (the first), in route order."""
    chosen: dict[Target, str] = {}
    for route in routes:
        if not all(matches(m, facts) for m in route.matchers):
            continue
        for target in route.targets:
            chosen.setdefault(target, route.name)
        if not route.proceed:
            break
    return list(chosen.items())


def matches(matcher: Matcher, facts: IncidentFacts) -> bool:
    if matcher.name == "service":
        hits = [matcher.matches({"service": s}) for s in sorted(facts.services) or [""]]
        return all(hits) if matcher.op in ("!=", "!~") else any(hits)
    if matcher.name == "severity":
        return matcher.matches({"severity": facts.severity})
    if matcher.name == "status":
        return matcher.matches({"status": facts.status})
    return matcher.matches(facts.labels)


DEFAULT_ROUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SEV1", ("pagerduty", "slack", "statuspage")),
    ("SEV2", ("pagerduty", "slack")),
    ("SEV3", ("slack", "email")),
    ("SEV4", ("slack-team",)),
)
"""Severity -> the conventional channel names it goes to when no routes are configured."""


def default_routes(configured: Collection[str]) -> tuple[Route, ...]:
    """The practice's routes over the configured channels (``slack-team`` falls back to ``slack``)."""
    routes = []
    for severity, names in DEFAULT_ROUTES:
        present = [n if n in configured else "slack" if n == "slack-team" else "" for n in names]
        targets = tuple(dict.fromkeys(Target(n) for n in present if n and n in configured))
        if targets:
            routes.append(Route(f"default {severity}", (parse(f'severity="{severity}"'),), targets))
    return tuple(routes)
