"""The incident book: the engine's working set of incidents, and how alert news changes it.

Correlation, suppression, severity and the lifecycle are pure decisions
(``correlation``, ``suppression``, ``severity``, ``incidents``). The book
holds what they decide over: the open incidents and those resolved recently
enough to be reopened, their members (alerts and symptoms), and indexes so
that every piece of news costs the same however many alerts are open: the
worst firing severity and the firing services are counted, not recomputed;
candidate roots and symptoms are looked up by their ``equal`` labels; the
cascade window is kept incrementally (and agrees with ``is_cascade``).

The engine calls ``fired``/``resolved`` for each piece of news of a batch,
then ``settle``; the book changes as it goes and gathers what changed in
``Changes``: values (incidents, members keyed by incident id and
fingerprint, timeline events) that the engine hands the store to write in
the transaction that records the batch. If that transaction fails, the book
no longer matches the store: the engine throws it away and loads it again.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import orjson

from receiver.alerts.labels import canonical_json
from receiver.alerts.matchers import match_all
from receiver.incidents import watchdog
from receiver.incidents.correlation import (
    CorrelationPolicy,
    IncidentView,
    Placement,
    Scope,
    place,
    scope_of,
    service_of,
    should_resolve,
)
from receiver.incidents.ignore import DEFAULT_IGNORE, Matchers, ignored
from receiver.incidents.lifecycle import (
    SIGNAL_FOR,
    EventKind,
    IncidentStatus,
    Lifecycle,
    Signal,
    TimelineEvent,
    incident_id,
)
from receiver.incidents.lifecycle import transition as lifecycle_transition
from receiver.incidents.severity import Classification, Modifiers, Rule, Severity, classify, in_context, tiered
from receiver.incidents.suppression import Dependency, FiringRoot, Suppression, suppression

Role = Literal["alert", "symptom"]
INTERNED_CLASSIFICATIONS = 4096
"""Most distinct classifications kept for sharing (threshold rules put values in their reasons)."""
Key = tuple[int, tuple[str, ...]]
"""A dependency's index and an alert's values of its ``equal`` labels."""
Keys = tuple[tuple[Key, ...], tuple[Key, ...]]
"""Where an alert sits in the dependency indexes: as a possible root, as a possible symptom."""


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """Everything the book decides with, from the configuration."""

    correlation: CorrelationPolicy = field(default_factory=CorrelationPolicy)
    rules: tuple[Rule, ...] = ()
    modifiers: Modifiers = field(default_factory=Modifiers)
    dependencies: tuple[Dependency, ...] = ()
    ignore: tuple[Matchers, ...] = DEFAULT_IGNORE
    """Alerts that never join an incident nor trigger a playbook (``ignore.ignored``)."""
    watchdog: watchdog.WatchdogPolicy = field(default_factory=watchdog.WatchdogPolicy)

    def ignores(self, labels: Mapping[str, str]) -> bool:
        """Whether alerts with these labels stay out of incidents and playbooks."""
        return ignored(labels, self.ignore)


@dataclass(slots=True)
class Member:
    """An alert as a member of an incident: a correlated alert, or a symptom of a root cause.

    Its labels are kept as their JSON text (what the store writes), with the few values the book reads
    at every piece of news taken out once: a dict of labels per open alert made the engine's memory
    grow by a kilobyte an alert.
    """

    fingerprint: str
    labels_json: str
    role: Role
    root: str | None
    """For a symptom: the fingerprint of its root-cause alert."""
    firing: bool
    classification: Classification
    """The alert's own severity: its rules or source severity, moved by its environment tier."""
    fired_at: datetime
    resolved_at: datetime | None = None
    keys: Keys = ((), ())
    """Its dependency keys, worked out once from its labels."""
    name: str = ""
    """The alert's name, for people (``alertname``, else the fingerprint)."""
    service: str = ""
    """The affected service it counts as: its subject (``shop/web``, ``node/worker-1``), never the exporter."""

    @classmethod
    def of(
        cls,
        fingerprint: str,
        labels: Mapping[str, str],
        policy: CorrelationPolicy,
        classification: Classification,
        **rest: Any,
    ) -> Member:
        """A member for an alert with these labels."""
        return cls(
            fingerprint,
            canonical_json(labels),
            classification=classification,
            name=labels.get("alertname", fingerprint),
            service=service_of(labels, policy),
            **rest,
        )

    @property
    def labels(self) -> dict[str, str]:
        """The alert's labels (read from their JSON text: for the rare paths that need them all)."""
        labels: dict[str, str] = orjson.loads(self.labels_json)
        return labels


class CascadeWindow:
    """The firing alerts that fired within the window, with their services, kept as news comes.

    ``is_cascade`` over the incident's firing alerts, at a cost per check that does not grow with them.
    """

    __slots__ = ("_fired", "_order", "_services")

    def __init__(self) -> None:
        self._order: collections.deque[tuple[datetime, str]] = collections.deque()
        self._fired: dict[str, tuple[datetime, str]] = {}
        self._services: collections.Counter[str] = collections.Counter()

    def fired(self, fingerprint: str, at: datetime, service: str) -> None:
        """An alert fired (again) at ``at``."""
        self.resolved(fingerprint)
        self._fired[fingerprint] = (at, service)
        self._order.append((at, fingerprint))
        if service:
            self._services[service] += 1

    def resolved(self, fingerprint: str) -> None:
        """An alert stopped firing: it no longer counts."""
        gone = self._fired.pop(fingerprint, None)
        if gone is not None and gone[1]:
            self._services[gone[1]] -= 1
            if not self._services[gone[1]]:
                del self._services[gone[1]]

    def is_cascade(self, now: datetime, policy: CorrelationPolicy) -> bool:
        """More than N alerts across more than M services fired within the window and fire still."""
        while self._order and now - self._order[0][0] > policy.window:
            at, fingerprint = self._order.popleft()
            if fingerprint in self._fired and self._fired[fingerprint][0] == at:
                self.resolved(fingerprint)
        return len(self._fired) > policy.cascade_alerts and len(self._services) > policy.cascade_services


@dataclass(slots=True)
class Incident:
    """One incident as the book keeps it."""

    id: str
    seq: int
    """Global order of opening: the listing's newest-first key."""
    scope: str
    title: str
    lifecycle: Lifecycle
    last_activity: datetime
    classification: Classification | None = None
    cascade: bool = False
    services: set[str] = field(default_factory=set)
    members: dict[str, Member] = field(default_factory=dict)
    firing_alerts: dict[Severity, dict[str, Classification]] = field(default_factory=dict)
    """Firing members with the alert role, by their own severity (symptoms do not set severity)."""
    firing_services: collections.Counter[str] = field(default_factory=collections.Counter)
    firing: int = 0
    """Firing members, symptoms included."""
    window: CascadeWindow = field(default_factory=CascadeWindow)
    stored_members: int = 0
    """How many members the store holds, when it was read without them (listings)."""

    @property
    def status(self) -> IncidentStatus:
        """Where the incident stands."""
        return self.lifecycle.status

    @property
    def severity(self) -> Severity | None:
        """Its severity, once classified."""
        return self.classification.severity if self.classification else None

    def view(self) -> IncidentView:
        """What correlation decides with."""
        return IncidentView(self.id, self.lifecycle.resolved_at, self.last_activity, self.firing)

    def worst(self) -> Classification | None:
        """The most severe firing alert's own classification."""
        for severity in Severity:
            if self.firing_alerts.get(severity):
                return next(iter(self.firing_alerts[severity].values()))
        return None


@dataclass
class Changes:
    """What one transaction changes in the incident tables, and what it counts for the metrics."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    """Incidents to write as they are now (the book's own objects)."""
    members: dict[tuple[str, str], Member | None] = field(default_factory=dict)
    """(incident id, fingerprint) -> the member to write (a new one after those of its incident), or None: gone."""
    events: list[tuple[str, TimelineEvent, str | None]] = field(default_factory=list)
    """(incident, event, fingerprint of the alert it is about)."""
    opened: list[Severity] = field(default_factory=list)
    """The first severity of each incident classified for the first time (counted as opened then)."""
    suppressed: int = 0
    acknowledged: list[tuple[Severity, float]] = field(default_factory=list)
    """(severity, seconds from detection) of each acknowledgement: MTTA."""
    resolved: list[tuple[Severity, float]] = field(default_factory=list)
    """(severity, seconds from detection) of each resolution: MTTR."""
    signals: list[tuple[str, Signal, TimelineEvent]] = field(default_factory=list)
    """(incident, what people may be told, the event that says it), in order (``receiver.notify``)."""
    refreshed: set[str] = field(default_factory=set)
    """Incidents whose alerts fired or resolved (``Signal.ALERTS_CHANGED``, once per transaction)."""

    def __bool__(self) -> bool:
        return bool(self.incidents or self.members or self.events)

    def touch(self, incident: Incident) -> None:
        """Write this incident's row."""
        self.incidents[incident.id] = incident

    def event(self, incident: Incident, event: TimelineEvent, fingerprint: str | None = None) -> None:
        """Append to an incident's timeline (and write its row)."""
        self.touch(incident)
        self.events.append((incident.id, event, fingerprint))

    def signal(self, incident: Incident, signal: Signal, event: TimelineEvent) -> None:
        """Say that people may be told of ``event`` (already in the timeline) as ``signal``."""
        self.signals.append((incident.id, signal, event))


class UnknownIncident(KeyError):
    """No incident has this id."""


class Book:
    """Open and recently resolved incidents, their members, and the indexes over them."""

    def __init__(self, policy: IncidentPolicy) -> None:
        self.policy = policy
        self.incidents: dict[str, Incident] = {}
        self._by_scope: dict[str, list[str]] = {}
        self._where: dict[str, str] = {}
        """fingerprint -> the incident the alert belongs to now."""
        self._roots: dict[tuple[int, tuple[str, ...]], dict[str, FiringRoot]] = {}
        """Firing alerts matching dependency i's root, by their values of its ``equal`` labels."""
        self._symptoms: dict[tuple[int, tuple[str, ...]], set[str]] = {}
        """Firing alerts matching dependency i's symptoms, by their values of its ``equal`` labels."""
        self._quiet: set[str] = set()
        """Open incidents with nothing firing."""
        self._dependents: dict[str, set[str]] = {}
        """Root-cause fingerprint -> its symptoms."""
        self._numbers: dict[str, int] = {}
        """Last incident number of each day (``20261122``)."""
        self._seq = 0
        self._interned: dict[Classification, Classification] = {}
        self._changes = Changes()

    # Loading.

    def restore(self, incident: Incident) -> None:
        """Add an incident loaded from the store with its members; its counts are made again here.

        An alert that belongs to a newer incident of the book stays with it: an old incident read back
        for a person's change (a note for the postmortem) only keeps its members as history.
        """
        self.incidents[incident.id] = incident
        self._by_scope.setdefault(incident.scope, []).append(incident.id)
        incident.firing = 0
        for member in incident.members.values():
            labels = member.labels
            member.keys = self._keys_of(labels)
            member.name = labels.get("alertname", member.fingerprint)
            member.service = service_of(labels, self.policy.correlation)
            holder = self.incidents.get(self._where.get(member.fingerprint, ""))
            if holder is not None and holder.seq > incident.seq:
                continue
            self._where[member.fingerprint] = incident.id
            if member.root is not None:
                self._dependents.setdefault(member.root, set()).add(member.fingerprint)
            if member.firing:
                self._start_firing(incident, member, member.fired_at)
        if incident.status is not IncidentStatus.RESOLVED and not incident.firing:
            self._quiet.add(incident.id)

    def set_counters(self, numbers: Mapping[str, int], seq: int) -> None:
        """The last numbers given, read from the store (incidents no longer in the book included)."""
        self._numbers.update(numbers)
        self._seq = max(self._seq, seq)

    @property
    def last_seq(self) -> int:
        """The seq of the incident opened last: those opened after a moment have a greater one."""
        return self._seq

    def where(self, fingerprint: str) -> tuple[Incident, Member] | None:
        """The incident an alert belongs to now, and its membership (role, root)."""
        incident = self.incidents.get(self._where.get(fingerprint, ""))
        member = incident.members.get(fingerprint) if incident else None
        return None if incident is None or member is None else (incident, member)

    # News, a batch at a time.

    def fired(self, fingerprint: str, labels: Mapping[str, str], annotations: Mapping[str, str], now: datetime) -> None:
        """An alert fired (or fired again, in a new episode)."""
        keys = self._keys_of(labels)
        where = self.incidents.get(self._where.get(fingerprint, ""))
        member = where.members.get(fingerprint) if where else None
        if where is not None and member is not None and where.status is not IncidentStatus.RESOLVED:
            if member.firing:
                return
            if member.role == "alert" and self._suppression(fingerprint, labels, keys) is None:
                self._refire(where, member, now)
                self._adopt_symptoms_of(fingerprint, labels, keys, now)
                return
            self._detach(where, member)  # a symptom, or one now: decided afresh below
        own = self._intern(tiered(classify(labels, annotations, self.policy.rules), labels, self.policy.modifiers))
        self._attach(fingerprint, labels, own, now, keys)

    def resolved(self, fingerprint: str, now: datetime, *, expired: bool = False) -> None:
        """An alert resolved (or expired: no word of it for too long)."""
        incident = self.incidents.get(self._where.get(fingerprint, ""))
        member = incident.members.get(fingerprint) if incident else None
        if incident is None or member is None or not member.firing:
            return
        self._stop_firing(incident, member, now)
        how = "expired: no update for too long" if expired else "resolved"
        self._changes.event(incident, TimelineEvent(now, EventKind.ALERT_RESOLVED, f"{member.name} {how}"), fingerprint)
        self._changes.refreshed.add(incident.id)
        self._reevaluate_symptoms_of(fingerprint, now)

    def watch(self, sightings: watchdog.Sightings, now: datetime, heard_until: datetime | None = None) -> Changes:
        """The dead man's switch: raise the daemon's own alert when the watchdog is overdue, clear it when back.

        ``sightings``: the watchdog's last arrivals, as stored; ``heard_until``: see ``watchdog.verdict``.
        Raised once: its incident is open while its alert fires, and the book is loaded with it after a restart.
        """
        policy = self.policy.watchdog
        found = self.where(watchdog.ALARM_FINGERPRINT)
        raised = found is not None and found[1].firing
        decided = watchdog.verdict(sightings, now, policy, raised, heard_until)
        if decided == "raise" and sightings.last is not None:
            title = watchdog.alarm_title(sightings.last)
            self.fired(watchdog.ALARM_FINGERPRINT, watchdog.alarm_labels(policy), {"summary": title}, now)
            if (placed := self.where(watchdog.ALARM_FINGERPRINT)) is not None:
                placed[0].title = title
                self._changes.event(placed[0], TimelineEvent(now, EventKind.NOTE, title))
        elif decided == "clear" and found is not None:
            self.resolved(watchdog.ALARM_FINGERPRINT, now)
            text = "the Watchdog arrives again" if policy.enabled else "the watchdog check was turned off"
            self._changes.event(found[0], TimelineEvent(now, EventKind.NOTE, text))
        return self.settle(now)

    def settle(self, now: datetime) -> Changes:
        """After a batch of news: cascades and severities of what changed; everything changed since the last."""
        for incident in list(self._changes.incidents.values()):
            self._check_cascade(incident, now)
            self._classify(incident, now)
        changes, self._changes = self._changes, Changes()
        return changes

    def discard(self) -> None:
        """Forget changes gathered but not written (the book is reloaded after a failed transaction)."""
        self._changes = Changes()

    # Time and people.

    def tick(self, now: datetime) -> Changes:
        """Resolve incidents quiet for the quiet period; forget resolved ones past the reopen window."""
        policy = self.policy.correlation
        for incident in [self.incidents[i] for i in sorted(self._quiet)]:
            if should_resolve(incident.view(), now, policy):  # resolved when it became quiet enough, not at this tick
                quiet_since = incident.last_activity + policy.quiet_period
                why = f"nothing has fired for {policy.quiet_period}"
                self._move(incident, IncidentStatus.RESOLVED, quiet_since, why)
        for incident in list(self.incidents.values()):
            resolved_at = incident.lifecycle.resolved_at
            if resolved_at is not None and now - resolved_at > policy.reopen_window + policy.window:
                self._evict(incident)
        return self.settle(now)

    def transition(self, id: str, to: IncidentStatus, now: datetime, actor: str, reason: str) -> Changes:
        """Move an incident on behalf of a person. UnknownIncident, InvalidTransition."""
        incident = self._get(id)
        self._move(incident, to, now, reason, actor)
        return self.settle(now)

    def note(
        self,
        id: str,
        text: str,
        now: datetime,
        actor: str,
        kind: EventKind = EventKind.NOTE,
        signal: Signal | None = Signal.NOTE,
    ) -> Changes:
        """Add a note (or another event a person or a playbook makes) to an incident's timeline.

        ``signal``: what people are told of it (None: nothing; a playbook run that started, say).
        """
        incident, event = self._get(id), TimelineEvent(now, kind, text, actor)
        self._changes.event(incident, event)
        if signal is not None:
            self._changes.signal(incident, signal, event)
        return self.settle(now)

    def annotate(self, entries: list[tuple[str, str]], now: datetime, actor: str, kind: EventKind) -> Changes:
        """Add several lines to timelines at once ((incident id, text) each; an unknown incident is skipped)."""
        for id, text in entries:
            incident = self.incidents.get(id)
            if incident is not None:
                self._changes.event(incident, TimelineEvent(now, kind, text, actor))
        return self.settle(now)

    def _get(self, id: str) -> Incident:
        try:
            return self.incidents[id]
        except KeyError:
            raise UnknownIncident(id) from None

    # Placing alerts.

    def _attach(
        self, fingerprint: str, labels: Mapping[str, str], own: Classification, now: datetime, keys: Keys
    ) -> None:
        """Place a firing alert that belongs to no open incident: as a symptom, or by correlation."""
        found = self._suppression(fingerprint, labels, keys)
        if found is not None:
            root_incident = self.incidents[self._where[found.root]]
            member = self._member(fingerprint, labels, "symptom", found.root, own, now, keys)
            self._join(root_incident, member, now, EventKind.SUPPRESSED, found.reason)
            self._changes.suppressed += 1
        else:
            scope = scope_of(fingerprint, labels, self.policy.correlation)
            placement = place(self._scope_views(str(scope)), now, self.policy.correlation)
            incident = self._placed(placement, scope, labels, now)
            member = self._member(fingerprint, labels, "alert", None, own, now, keys)
            kind = EventKind.ALERT_FIRED if placement.action == "open" else EventKind.CORRELATED
            self._join(incident, member, now, kind, placement.reason)
        self._adopt_symptoms_of(fingerprint, labels, keys, now)

    def _member(
        self,
        fingerprint: str,
        labels: Mapping[str, str],
        role: Role,
        root: str | None,
        own: Classification,
        now: datetime,
        keys: Keys,
    ) -> Member:
        rest = {"role": role, "root": root, "firing": True, "fired_at": now, "keys": keys}
        return Member.of(fingerprint, labels, self.policy.correlation, own, **rest)

    def _intern(self, classification: Classification) -> Classification:
        """One object per distinct classification: most alerts share a handful of them."""
        if len(self._interned) > INTERNED_CLASSIFICATIONS:
            self._interned.clear()
        return self._interned.setdefault(classification, classification)

    def _placed(self, placement: Placement, scope: Scope, labels: Mapping[str, str], now: datetime) -> Incident:
        if placement.action == "open" or placement.incident is None:
            return self._open(scope, labels, now)
        incident = self.incidents[placement.incident]
        if placement.action == "reopen":
            self._move(incident, IncidentStatus.TRIGGERED, now, placement.reason)
        return incident

    def _open(self, scope: Scope, labels: Mapping[str, str], now: datetime) -> Incident:
        day = f"{now:%Y%m%d}"
        self._numbers[day] = self._numbers.get(day, 0) + 1
        self._seq += 1
        name = labels.get("alertname", "alert")
        where = f"{scope.rule} {','.join(scope.values)}" if scope.rule != "alert" else "its own scope"
        incident = Incident(
            id=incident_id(now, self._numbers[day]),
            seq=self._seq,
            scope=str(scope),
            title=f"{name} in {where}",
            lifecycle=Lifecycle(IncidentStatus.TRIGGERED, now),
            last_activity=now,
        )
        self.incidents[incident.id] = incident
        self._by_scope.setdefault(incident.scope, []).append(incident.id)
        return incident

    def _join(self, incident: Incident, member: Member, now: datetime, kind: EventKind, reason: str) -> None:
        old = self.incidents.get(self._where.get(member.fingerprint, ""))
        if old is not None and old is not incident:
            if old.members.pop(member.fingerprint, None) is member:  # it moves: the old incident no longer has it
                self._changes.members[(old.id, member.fingerprint)] = None
            self._changes.touch(old)
        incident.members[member.fingerprint] = member
        self._where[member.fingerprint] = incident.id
        if member.root is not None:
            self._dependents.setdefault(member.root, set()).add(member.fingerprint)
        joins = (  # news for people once the incident was declared (classified); before, it is part of it
            incident.classification is not None and bool(member.service) and member.service not in incident.services
        )
        self._start_firing(incident, member, now)
        self._changes.members[(incident.id, member.fingerprint)] = member
        event = TimelineEvent(now, kind, f"{member.name} fired: {reason}")
        self._changes.event(incident, event, member.fingerprint)
        self._changes.refreshed.add(incident.id)
        if joins:
            self._changes.signal(incident, Signal.SERVICES_JOINED, replace(event, text=f"{member.service} joined"))

    def _refire(self, incident: Incident, member: Member, now: datetime) -> None:
        self._start_firing(incident, member, now)
        self._changes.members[(incident.id, member.fingerprint)] = member
        self._changes.event(
            incident, TimelineEvent(now, EventKind.ALERT_FIRED, f"{member.name} fired again"), member.fingerprint
        )
        self._changes.refreshed.add(incident.id)

    def _detach(self, incident: Incident, member: Member) -> None:
        """Take a member that does not fire out of its incident."""
        incident.members.pop(member.fingerprint, None)
        self._changes.members[(incident.id, member.fingerprint)] = None
        self._changes.touch(incident)
        self._where.pop(member.fingerprint, None)
        if member.root is not None:
            self._dependents.get(member.root, set()).discard(member.fingerprint)

    def _start_firing(self, incident: Incident, member: Member, now: datetime) -> None:
        member.firing = True
        member.fired_at = now
        member.resolved_at = None
        incident.firing += 1
        incident.last_activity = max(incident.last_activity, now)
        self._quiet.discard(incident.id)
        service = member.service
        if service:
            incident.services.add(service)
        if member.role == "alert":
            incident.firing_alerts.setdefault(member.classification.severity, {})[member.fingerprint] = (
                member.classification
            )
            if service:
                incident.firing_services[service] += 1
            incident.window.fired(member.fingerprint, now, service)
        self._index(member)

    def _stop_firing(self, incident: Incident, member: Member, now: datetime) -> None:
        member.firing = False
        member.resolved_at = now
        incident.firing -= 1
        incident.last_activity = max(incident.last_activity, now)
        if not incident.firing and incident.status is not IncidentStatus.RESOLVED:
            self._quiet.add(incident.id)
        if member.role == "alert":
            incident.firing_alerts.get(member.classification.severity, {}).pop(member.fingerprint, None)
            service = member.service
            if service:
                incident.firing_services[service] -= 1
                if not incident.firing_services[service]:
                    del incident.firing_services[service]
            incident.window.resolved(member.fingerprint)
        self._unindex(member)
        self._changes.members[(incident.id, member.fingerprint)] = member

    # Suppression.

    def _keys_of(self, labels: Mapping[str, str]) -> Keys:
        """The dependency keys of an alert with these labels (only alerts that have an ``equal`` value each)."""
        roots: list[Key] = []
        symptoms: list[Key] = []
        for i, dependency in enumerate(self.policy.dependencies):
            root, symptom = match_all(dependency.root, labels), match_all(dependency.symptoms, labels)
            if root or symptom:
                values = tuple(labels.get(n, "") for n in dependency.equal)
                if all(values):
                    if root:
                        roots.append((i, values))
                    if symptom:
                        symptoms.append((i, values))
        return tuple(roots), tuple(symptoms)

    def _index(self, member: Member) -> None:
        roots, symptoms = member.keys
        for key in roots:
            self._roots.setdefault(key, {})[member.fingerprint] = FiringRoot(member.fingerprint, member.labels)
        for key in symptoms:
            self._symptoms.setdefault(key, set()).add(member.fingerprint)

    def _unindex(self, member: Member) -> None:
        roots, symptoms = member.keys
        for key in roots:
            self._roots.get(key, {}).pop(member.fingerprint, None)
        for key in symptoms:
            self._symptoms.get(key, set()).discard(member.fingerprint)

    def _suppression(self, fingerprint: str, labels: Mapping[str, str], keys: Keys) -> Suppression | None:
        """``suppression`` over the firing roots, asked only of the one that decides, whatever the number firing.

        ``suppression`` takes the first dependency the alert is a symptom of, then the first of its roots in
        the order given (here: by fingerprint). Roots indexed under the alert's key of a dependency are exactly
        that dependency's candidate roots, so the smallest fingerprint among them is the one it would pick.
        """
        for key in keys[1]:  # in the order of the dependencies
            roots = self._roots.get(key, {})
            first = min((fp for fp in roots if fp != fingerprint), default=None)
            if first is not None:
                return suppression(fingerprint, labels, [roots[first]], self.policy.dependencies)
        return None

    def _adopt_symptoms_of(self, root: str, labels: Mapping[str, str], keys: Keys, now: datetime) -> None:
        """A root cause fired: firing alerts that are its symptoms become its (unless a root first in order has them).

        Which root a symptom hangs on is the pure decision over the roots firing now, whatever the order they fired in.
        """
        # Symptoms under a key whose smallest root is another one already hang on it (or on an earlier
        # dependency's root): nothing changes for them, and a root that fires costs nothing more.
        changing = [key for key in keys[0] if min(self._roots.get(key, {root: None})) == root]
        for fingerprint in sorted({fp for key in changing for fp in self._symptoms.get(key, ())} - {root}):
            incident = self.incidents[self._where[fingerprint]]
            member = incident.members[fingerprint]
            if not member.firing:
                continue
            found = self._suppression(fingerprint, member.labels, member.keys)  # the new root may now come first
            if found is not None and found.root != member.root:
                self._make_symptom(incident, member, found.root, found.reason, now)

    def _make_symptom(self, incident: Incident, member: Member, root: str, reason: str, now: datetime) -> None:
        target = self.incidents[self._where[root]]
        self._stop_firing(incident, member, now)
        if member.root is not None:
            self._dependents.get(member.root, set()).discard(member.fingerprint)
        member.role, member.root = "symptom", root
        if target is not incident:
            text = f"{member.name} is now a symptom in {target.id}: {reason}"
            self._changes.event(incident, TimelineEvent(now, EventKind.SUPPRESSED, text), member.fingerprint)
        self._join(target, member, now, EventKind.SUPPRESSED, reason)
        self._changes.suppressed += 1
        if not incident.members and incident.status is not IncidentStatus.RESOLVED:
            self._move(incident, IncidentStatus.RESOLVED, now, f"all its alerts became symptoms in {target.id}")

    def _reevaluate_symptoms_of(self, root: str, now: datetime) -> None:
        """A root cause stopped firing: its symptoms that still fire are placed again."""
        for fingerprint in sorted(self._dependents.get(root, ())):
            incident = self.incidents.get(self._where.get(fingerprint, ""))
            member = incident.members.get(fingerprint) if incident else None
            if incident is None or member is None or member.root != root or not member.firing:
                continue
            self._stop_firing(incident, member, now)
            self._detach(incident, member)
            text = f"{member.name} is no longer a symptom: its root cause resolved"
            self._changes.event(incident, TimelineEvent(now, EventKind.CORRELATED, text), member.fingerprint)
            self._attach(member.fingerprint, member.labels, member.classification, now, member.keys)

    # Lifecycle, severity, cascade.

    def _move(
        self, incident: Incident, to: IncidentStatus, now: datetime, reason: str, actor: str = "receiver"
    ) -> None:
        lifecycle, event = lifecycle_transition(incident.lifecycle, to, now, reason, actor)
        severity = incident.severity or Severity.SEV4
        if to is IncidentStatus.ACKNOWLEDGED and lifecycle.time_to_acknowledge is not None:
            self._changes.acknowledged.append((severity, lifecycle.time_to_acknowledge))
        if to is IncidentStatus.RESOLVED and lifecycle.time_to_resolve is not None:
            self._changes.resolved.append((severity, lifecycle.time_to_resolve))
        incident.lifecycle = lifecycle
        if to is IncidentStatus.RESOLVED:
            self._quiet.discard(incident.id)
        elif to is IncidentStatus.TRIGGERED:
            incident.cascade = False
            incident.last_activity = max(incident.last_activity, now)
            if not incident.firing:
                self._quiet.add(incident.id)
        self._changes.event(incident, event)
        self._changes.signal(incident, SIGNAL_FOR[to], event)

    def _check_cascade(self, incident: Incident, now: datetime) -> None:
        """Marked when the cascade condition holds within the window; unmarked once fewer alerts fire than it needs.

        A cascade stays marked while its breadth lasts (however long ago they fired), and ends when alerts
        resolve or turn out to be symptoms, so the result depends on what fires, not on the order it fired in.
        """
        if incident.status is IncidentStatus.RESOLVED:
            return
        policy = self.policy.correlation
        if incident.cascade:
            firing = sum(len(alerts) for alerts in incident.firing_alerts.values())
            if firing <= policy.cascade_alerts or len(incident.firing_services) <= policy.cascade_services:
                incident.cascade = False
                text = f"no longer a cascade: {firing} alerts across {len(incident.firing_services)} services fire"
                self._changes.event(incident, TimelineEvent(now, EventKind.CLASSIFIED, text))
        elif incident.window.is_cascade(now, policy):
            incident.cascade = True
            text = (
                f"cascade: more than {policy.cascade_alerts} alerts across more than"
                f" {policy.cascade_services} services fired within {policy.window}"
            )
            self._changes.event(incident, TimelineEvent(now, EventKind.CLASSIFIED, text))

    def _classify(self, incident: Incident, now: datetime) -> None:
        worst = incident.worst()
        if worst is None:
            return  # nothing of its own fires: the severity stays what it was
        new = in_context(worst, len(incident.firing_services), incident.cascade, self.policy.modifiers)
        old = incident.classification
        if old is not None and old.severity == new.severity:
            incident.classification = new if old.reasons == new.reasons else old
            return
        incident.classification = new
        if old is None:
            text = f"classified {new.severity}: {new.reason}"
            self._changes.opened.append(new.severity)
            signal = Signal.OPENED
        else:
            worse = new.severity < old.severity
            verb = "escalated" if worse else "de-escalated"
            text = f"{verb} from {old.severity} to {new.severity}: {new.reason}"
            signal = Signal.ESCALATED if worse else Signal.DEESCALATED
        event = TimelineEvent(now, EventKind.CLASSIFIED, text)
        self._changes.event(incident, event)
        self._changes.signal(incident, signal, event)

    def _scope_views(self, scope: str) -> list[IncidentView]:
        return [self.incidents[i].view() for i in self._by_scope.get(scope, ())]

    def _evict(self, incident: Incident) -> None:
        del self.incidents[incident.id]
        ids = self._by_scope.get(incident.scope, [])
        if incident.id in ids:
            ids.remove(incident.id)
        if not ids:
            self._by_scope.pop(incident.scope, None)
        for member in incident.members.values():
            if self._where.get(member.fingerprint) == incident.id:
                del self._where[member.fingerprint]
                if member.firing:
                    self._unindex(member)


def snapshot(incidents: Iterable[Incident]) -> list[tuple[frozenset[str], frozenset[str], Severity | None, bool]]:
    """Incidents as comparable values (alerts, symptoms, severity, cascade), ignoring ids and times; sorted."""
    rows = []
    for incident in incidents:
        alerts = frozenset(m.fingerprint for m in incident.members.values() if m.role == "alert")
        symptoms = frozenset(m.fingerprint for m in incident.members.values() if m.role == "symptom")
        if alerts or symptoms:
            rows.append((alerts, symptoms, incident.severity, incident.cascade))
    return sorted(rows, key=lambda r: (sorted(r[0]), sorted(r[1])))
