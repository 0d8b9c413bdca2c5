"""Planning: from what changed in incidents to the outbox rows that tell people, and the cadence deadlines.

The engine's processor holds a ``Planner`` beside its incident book, loaded from the store with it.
After each change (a batch of alert news, a person's action, a tick) it hands the planner the book's
``Changes``; the planner decides, purely:

- which channels the incident goes to now (``routing``), adding any it did not have (an incident keeps
  every channel it was ever routed to, so they all hear how it ends);
- one ``Intent`` per signal and channel that wants it, keyed by (incident, event, channel, destination);
- a mergeable refresh for incidents whose alerts changed, unless the change already sends that channel
  something (every delivery renders the incident as it is when sent);
- the next update deadline (``cadence``), and reminders for those that passed.

What it returns (``Notices``) is written in the same transaction as the change; if that fails, the
processor throws the planner away with the book and loads both again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from receiver.incidents.book import Changes, Incident
from receiver.incidents.lifecycle import EventKind, IncidentStatus, Signal, TimelineEvent
from receiver.notify.cadence import Cadence
from receiver.notify.model import Intent, Target
from receiver.notify.routing import IncidentFacts, Route, routed
from receiver.oncall.policies import Escalation

Wants = Callable[[str, Signal], bool]
"""(channel name, signal) -> whether that channel sends anything for it."""
_REMINDER_KIND = EventKind.NOTIFICATION
MERGEABLE = frozenset({Signal.ALERTS_CHANGED, Signal.SERVICES_JOINED, Signal.RUN_BLOCKED})
"""News that only adds to what a pending row will render: merged into it (``receiver.store.sqlite_outbox``)."""
PAGE_ROUTE = "person:"
"""The route of a paged person's target (``person:alice``, ``receiver.notify.escalation``)."""
FOLLOWS_PAGE = frozenset({Signal.PAGED, Signal.ACKNOWLEDGED, Signal.MITIGATED, Signal.RESOLVED})
"""All a paged person hears afterwards where they were paged: how the incident ends, not every change."""
RESETS_CADENCE = frozenset({Signal.STATUS_UPDATE, Signal.NOTE})
"""A person's status update or note is an update: the next one is due a full interval later."""


@dataclass
class Notices:
    """What a transaction writes for notifications."""

    intents: list[Intent] = field(default_factory=list)
    targets: list[tuple[str, Target, str]] = field(default_factory=list)
    """(incident, target, route) an incident was newly routed to."""
    due: dict[str, datetime | None] = field(default_factory=dict)
    """incident -> its next update deadline (None: none any more)."""
    at: datetime | None = None
    """When they were decided: the rows' creation time, and when they are first due."""
    escalations: dict[str, Escalation | None] = field(default_factory=dict)
    """incident -> where its escalation stands now (None: it ended) (``receiver.notify.escalation``)."""
    cancel: set[str] = field(default_factory=set)
    """Incidents whose pages still waiting to be sent are not sent any more (it was acknowledged)."""

    def __bool__(self) -> bool:
        return bool(self.intents or self.targets or self.due or self.escalations or self.cancel)

    def extend(self, other: Notices) -> Notices:
        """These notices and ``other``'s (decided later), as one."""
        self.intents.extend(other.intents)
        self.targets.extend(other.targets)
        self.due.update(other.due)
        self.escalations.update(other.escalations)
        self.cancel |= other.cancel
        self.at = other.at or self.at
        return self


@dataclass(frozen=True, slots=True)
class Channels:
    """The configured channels as planning needs them: their types, and what each wants."""

    kinds: Mapping[str, str]
    """channel name -> its type (``slack``)."""
    wants: Wants


class Planner:
    """The incidents' channels and update deadlines, and what changes send."""

    def __init__(self, routes: Sequence[Route], channels: Channels, cadence: Cadence) -> None:
        self.routes = tuple(routes)
        self.channels = channels
        self.cadence = cadence
        self.targets: dict[str, dict[Target, str]] = {}
        """incident -> its channels (and the route that chose each)."""
        self.due: dict[str, datetime] = {}
        """incident -> when its next status update is due."""

    def reset(self) -> None:
        """Forget everything (the processor loads the book and this state again)."""
        self.targets.clear()
        self.due.clear()

    def restore(self, targets: Iterable[tuple[str, Target, str]], due: Mapping[str, datetime]) -> None:
        """State read back from the store."""
        for incident, target, route in targets:
            self.targets.setdefault(incident, {})[target] = route
        self.due.update(due)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the state of incidents no longer in the book (read again when one comes back)."""
        kept = set(keep)
        for table in (self.targets, self.due):
            for incident in [i for i in table if i not in kept]:
                del table[incident]

    def plan(self, changes: Changes, incidents: Mapping[str, Incident], now: datetime) -> Notices:
        """What ``changes`` tells people, and the deadlines it moves."""
        notices = Notices(at=now)
        signals: dict[str, list[tuple[Signal, TimelineEvent]]] = {}
        for incident_id, signal, event in changes.signals:
            signals.setdefault(incident_id, []).append((signal, event))
        for told in signals.values():
            _collapse_joins(told)
        for incident_id in [*signals, *(i for i in sorted(changes.refreshed) if i not in signals)]:
            incident = incidents.get(incident_id)
            if incident is None or incident.severity is None:
                continue  # not classified yet: nothing to say until it is (it is within the same batch)
            self._plan_one(incident, signals.get(incident_id, []), incident_id in changes.refreshed, now, notices)
        return notices

    def step(self, incident: Incident, channel: str, event: TimelineEvent) -> Notices:
        """A playbook's ``notify`` step: to ``channel``, or every channel of the incident for ``default``."""
        notices = Notices(at=event.at)
        known = self.targets.get(incident.id, {})
        if channel == "default":
            targets = [target for target, route in known.items() if not is_page_route(route)]
        else:
            targets = [Target.parse(channel)]
        for target in targets:
            if target.channel in self.channels.kinds and self.channels.wants(target.channel, Signal.STEP):
                key = event_key(Signal.STEP, event)
                notices.intents.append(self._intent(incident.id, Signal.STEP, event, target, key))
        return notices

    def remind(self, incidents: Mapping[str, Incident], now: datetime) -> Notices:
        """Reminders for open incidents whose next update is overdue; each deadline moves an interval on."""
        notices = Notices(at=now)
        for incident_id, due in sorted(self.due.items()):
            incident = incidents.get(incident_id)
            if due > now or incident is None:
                continue
            if incident.status is IncidentStatus.RESOLVED:
                self._set_due(incident_id, None, notices)
                continue
            text = f"a status update was due at {due:%Y-%m-%d %H:%M} UTC: post one (POST .../{incident_id}/updates)"
            event = TimelineEvent(now, _REMINDER_KIND, text)
            for target, route in self.targets.get(incident_id, {}).items():
                if self._hears(route, target, Signal.REMINDER):
                    key = event_key(Signal.REMINDER, event)
                    notices.intents.append(self._intent(incident_id, Signal.REMINDER, event, target, key))
            self._set_due(incident_id, self.cadence.next_after(incident.severity, now), notices)
        return notices

    def _plan_one(
        self,
        incident: Incident,
        signals: list[tuple[Signal, TimelineEvent]],
        refreshed: bool,
        now: datetime,
        notices: Notices,
    ) -> None:
        known = self.targets.setdefault(incident.id, {})
        added = self._route(incident, known, notices)
        told: set[Target] = set()
        seen: dict[str, int] = {}
        for signal, event in signals:
            key = event_key(signal, event, seen)
            for target in known:
                if self._hears(known[target], target, signal):
                    intent = self._intent(incident.id, signal, event, target, key, known[target])
                    notices.intents.append(_mergeable(intent) if signal in MERGEABLE else intent)
                    told.add(target)
            self._schedule(incident, signal, event, notices)
        for target in added:
            if target not in told and self.channels.wants(target.channel, Signal.OPENED):
                event = TimelineEvent(now, _REMINDER_KIND, f"routed to {target} by {known[target]}")
                notices.intents.append(self._intent(incident.id, Signal.OPENED, event, target, "opened", known[target]))
                told.add(target)
        if refreshed:
            event = TimelineEvent(now, _REMINDER_KIND, "alerts changed")
            for target in known:
                if target not in told and self._hears(known[target], target, Signal.ALERTS_CHANGED):
                    key = event_key(Signal.ALERTS_CHANGED, event)
                    intent = self._intent(incident.id, Signal.ALERTS_CHANGED, event, target, key, known[target])
                    notices.intents.append(_mergeable(intent))

    def _hears(self, route: str, target: Target, signal: Signal) -> bool:
        """Whether ``target`` (given by ``route``) is sent ``signal``."""
        if is_page_route(route) and signal not in FOLLOWS_PAGE:
            return False
        return self.channels.wants(target.channel, signal)

    def adopt(self, targets: Iterable[tuple[str, Target, str]]) -> None:
        """Targets escalation paged: they hear how the incident ends (a known target keeps its route)."""
        for incident, target, route in targets:
            self.targets.setdefault(incident, {}).setdefault(target, route)

    def _route(self, incident: Incident, known: dict[Target, str], notices: Notices) -> list[Target]:
        """Add the targets the routes give the incident now; the ones added."""
        if incident.status is IncidentStatus.RESOLVED:
            return []  # it ends where it was told; an old one read back for a note is not routed anew
        added = []
        for target, route in routed(facts_of(incident), self.routes):
            if target not in known and target.channel in self.channels.kinds:
                known[target] = route
                notices.targets.append((incident.id, target, route))
                added.append(target)
        return added

    def _schedule(self, incident: Incident, signal: Signal, event: TimelineEvent, notices: Notices) -> None:
        """Move the incident's update deadline for ``signal``."""
        due = self.due.get(incident.id)
        if signal is Signal.RESOLVED:
            self._set_due(incident.id, None, notices)
        elif signal in (Signal.OPENED, Signal.REOPENED) or (signal in RESETS_CADENCE and event.actor != "receiver"):
            self._set_due(incident.id, self.cadence.next_after(incident.severity, event.at), notices)
        elif signal in (Signal.ESCALATED, Signal.DEESCALATED):
            self._set_due(incident.id, self.cadence.regraded(due, incident.severity, event.at), notices)

    def _set_due(self, incident: str, due: datetime | None, notices: Notices) -> None:
        if due is None:
            if self.due.pop(incident, None) is not None:
                notices.due[incident] = None
        elif self.due.get(incident) != due:
            self.due[incident] = notices.due[incident] = due

    def _intent(
        self, incident: str, signal: Signal, event: TimelineEvent, target: Target, key: str, route: str = ""
    ) -> Intent:
        route = route or self.targets.get(incident, {}).get(target, "")
        kind = self.channels.kinds[target.channel]
        return Intent(incident, signal, key, target, kind, event.text, event.actor, event.at, route=route)


def is_page_route(route: str) -> bool:
    """Whether a target was added by paging a person (it hears only ``FOLLOWS_PAGE``)."""
    return route.startswith(PAGE_ROUTE)


def facts_of(incident: Incident) -> IncidentFacts:
    first = next(iter(incident.members.values()), None)
    return IncidentFacts(
        str(incident.severity) if incident.severity else "",
        incident.status.value,
        frozenset(incident.services),
        first.labels if first is not None else {},
    )


def event_key(signal: Signal, event: TimelineEvent, seen: dict[str, int] | None = None) -> str:
    """The event part of an idempotency key: ``opened`` once per incident, else the signal and its instant."""
    if signal is Signal.OPENED:
        return "opened"
    key = f"{signal.value}@{event.at.timestamp() * 1_000_000:.0f}"
    if seen is not None:
        seen[key] = seen.get(key, 0) + 1
        key = key if seen[key] == 1 else f"{key}.{seen[key]}"
    return key


def _collapse_joins(told: list[tuple[Signal, TimelineEvent]]) -> None:
    """Services joining within one change are one piece of news (``a, b and c joined``), told where the first was."""
    joins = [n for n, (signal, _) in enumerate(told) if signal is Signal.SERVICES_JOINED]
    if len(joins) < 2:
        return
    first = told[joins[0]][1]
    names = [told[n][1].text.removesuffix(" joined") for n in joins]
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    told[joins[0]] = (Signal.SERVICES_JOINED, replace(first, text=f"{shown} joined"))
    for n in reversed(joins[1:]):
        del told[n]


def _mergeable(intent: Intent) -> Intent:
    return replace(intent, mergeable=True)
