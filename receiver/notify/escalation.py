"""Escalation: making sure a person takes each incident, step by step, as deadlines in the store.

The processor holds an ``Escalator`` beside its planner, loaded from the store with the book. Its
decisions are pure and written in the transaction of the change that causes them:

- ``follow``: an incident that opens (or reopens) starts the ladder its policy route chooses, due at
  once; an acknowledgement, mitigation or resolution ends it (and pages still waiting for a person's
  later contact rule are cancelled with it); a severity upgrade that chooses another policy starts that
  one instead.
- ``fire``: a due step resolves its targets (schedules to whoever is on call now), writes one ``PAGED``
  outbox row per contact of each person reached (a later rule's row is due later), says in the
  timeline whom it paged and how, and moves the deadline to the end of the step's wait. After the
  last step of the last round, the deadline is the end of its wait, then the timeline says nobody
  acknowledged and the escalation ends.

A crash loses nothing and fires nothing twice: the state, the rows and the timeline line of a step are
one transaction, and the engine claims the deadline again after a restart.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from receiver.alerts.matchers import Matcher
from receiver.incidents.book import Changes, Incident
from receiver.incidents.lifecycle import EventKind, IncidentStatus, Signal, TimelineEvent
from receiver.notify.model import Intent, Target
from receiver.notify.pagerduty_webhooks import FROM_PAGERDUTY
from receiver.notify.planning import PAGE_ROUTE, Notices, event_key, facts_of
from receiver.notify.routing import IncidentFacts, matches
from receiver.oncall.policies import Contact, Escalation, Person, Policy, Reached, RefKind, Roster

ACTOR = "escalation"
"""The timeline's actor of a fired step."""
STOPS = frozenset({Signal.ACKNOWLEDGED, Signal.MITIGATED, Signal.RESOLVED})
STARTS = frozenset({Signal.OPENED, Signal.REOPENED})


@dataclass(frozen=True, slots=True)
class PolicyRoute:
    """Matchers on the incident (as notification routes see it) and the policy it escalates by."""

    name: str
    matchers: tuple[Matcher, ...]
    policy: str


@dataclass(frozen=True, slots=True)
class Ladders:
    """Everything escalation decides with: policies, routes to them, people and schedules, channels."""

    policies: Mapping[str, Policy] = field(default_factory=dict)
    routes: tuple[PolicyRoute, ...] = ()
    roster: Roster = field(default_factory=Roster)
    contacts: Mapping[str, str] = field(default_factory=dict)
    """contact kind (``slack``, ``email``) -> the channel name people are reached through."""
    kinds: Mapping[str, str] = field(default_factory=dict)
    """channel name -> its type (``slack``)."""

    def reaching(self, person: Person) -> list[tuple[Contact, Target | None]]:
        """Each of ``person``'s contact rules and where it sends (None: no channel of that kind)."""
        found: list[tuple[Contact, Target | None]] = []
        for contact in person.contacts():
            if contact.channel is not None:
                own = Target.parse(contact.channel)
                found.append((contact, own if own.channel in self.kinds else None))
                continue
            channel = self.contacts.get(contact.kind)
            known = channel is not None and channel in self.kinds
            found.append((contact, Target(channel, person.addresses[contact.kind]) if known and channel else None))
        return found

    def choose(self, incident: Incident) -> Policy | None:
        """The policy for ``incident``."""
        return self.choose_for(facts_of(incident))

    def choose_for(self, facts: IncidentFacts) -> Policy | None:
        """The policy for an incident so described: the first route that matches, else ``sev1`` for a SEV1,
        else ``default``."""
        for route in self.routes:
            if all(matches(m, facts) for m in route.matchers):
                return self.policies.get(route.policy)
        if facts.severity == "SEV1" and "sev1" in self.policies:
            return self.policies["sev1"]
        return self.policies.get("default")


@dataclass(frozen=True, slots=True)
class Fired:
    """What firing one incident's due step did: its timeline line (empty: none) and its notices."""

    incident: str
    text: str
    notices: Notices
    policy: str = ""
    step: int = 0
    """The step fired, from 1 (0: none fired: the ladder ended, or the incident no longer escalates)."""
    nobody: int = 0
    """Targets that reached nobody (a schedule with nobody on call)."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An acknowledgement as the metrics count it."""

    severity: str
    seconds: float
    """From detection."""
    path: str
    """``link``, ``slack``, ``pagerduty`` or ``api`` (``path_of``)."""
    by: str
    """The configured person who acknowledged, or ``other``."""


PATHS = {"signed link": "link", "slack": "slack"}
"""Words of an acknowledgement's reason -> the path it came by (the link and Slack handlers say so)."""


def path_of(event: TimelineEvent) -> str:
    """Through which path an acknowledgement came: PagerDuty's webhook, a signed link, Slack, else the API."""
    if event.actor.startswith("pagerduty"):
        return "pagerduty"
    text = event.text.lower()
    return next((path for words, path in PATHS.items() if words in text), "api")


def acknowledger(actor: str, people: Mapping[str, Person]) -> str:
    """The configured person an acknowledgement's actor is (``pagerduty: bob`` is bob), else ``other``."""
    name = actor.removeprefix(FROM_PAGERDUTY).strip()
    return name if name in people else "other"


class Escalator:
    """The open escalations, and what changes and deadlines do to them."""

    def __init__(self, ladders: Ladders) -> None:
        self.ladders = ladders
        self.state: dict[str, Escalation] = {}
        self._heap: list[tuple[datetime, str]] = []

    def reset(self) -> None:
        """Forget everything (the processor loads the book and this state again)."""
        self.state.clear()
        self._heap.clear()

    def restore(self, escalations: Iterable[Escalation]) -> None:
        """State read back from the store."""
        for escalation in escalations:
            self._set(escalation)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the state of incidents no longer in the book."""
        kept = set(keep)
        for incident in [i for i in self.state if i not in kept]:
            del self.state[incident]

    def next_due(self) -> datetime | None:
        """When the earliest deadline is (None: nothing escalates)."""
        while self._heap:
            due, incident = self._heap[0]
            current = self.state.get(incident)
            if current is not None and current.due == due:
                return due
            heapq.heappop(self._heap)  # a deadline that moved or ended
        return None

    def due(self, now: datetime, limit: int = 1000) -> list[str]:
        """The incidents whose deadline has come, earliest first (at most ``limit``)."""
        found: list[str] = []
        while len(found) < limit and (due := self.next_due()) is not None and due <= now:
            found.append(heapq.heappop(self._heap)[1])
        return found

    def follow(self, changes: Changes, incidents: Mapping[str, Incident], now: datetime) -> Notices:
        """Start, stop or switch ladders as ``changes`` says."""
        notices = Notices(at=now)
        for incident_id, signal, _ in changes.signals:
            incident = incidents.get(incident_id)
            if signal in STOPS:
                self._stop(incident_id, notices)
                notices.cancel.add(incident_id)  # even after the ladder ended: a page not sent yet is not needed
            elif incident is None or incident.severity is None:
                continue
            elif signal in STARTS:
                self._start(incident, now, notices)
            elif signal is Signal.ESCALATED and incident_id in self.state:
                policy = self.ladders.choose(incident)
                if policy is not None and policy.name != self.state[incident_id].policy:
                    self._start(incident, now, notices)
        return notices

    def acknowledgements(self, changes: Changes, incidents: Mapping[str, Incident]) -> list[Acknowledgement]:
        """Who acknowledged which incident through which path, and how long after detection."""
        found = []
        for incident_id, signal, event in changes.signals:
            incident = incidents.get(incident_id)
            if signal is not Signal.ACKNOWLEDGED or incident is None or incident.severity is None:
                continue
            by = acknowledger(event.actor, self.ladders.roster.people)
            seconds = max(0.0, incident.lifecycle.time_to_acknowledge or 0.0)
            found.append(Acknowledgement(str(incident.severity), seconds, path_of(event), by))
        return found

    def fire(self, incident: Incident | None, incident_id: str, now: datetime) -> Fired:
        """Fire ``incident_id``'s due step (or end its ladder); the state moves on in the notices."""
        notices = Notices(at=now)
        current = self.state.get(incident_id)
        policy = self.ladders.policies.get(current.policy) if current is not None else None
        if current is None or policy is None or incident is None or incident.status is not IncidentStatus.TRIGGERED:
            self._stop(incident_id, notices)
            return Fired(incident_id, "", notices)
        waited = _waited(policy, current)
        if current.exhausted:
            self._stop(incident_id, notices, cancel=False)  # nobody acknowledged: what is still due is sent
            text = f"{waited}escalation {policy.name} ended: nobody acknowledged after {_rounds(policy.rounds)}"
            return Fired(incident_id, text, notices, policy.name)
        step = policy.steps[current.step]
        event = TimelineEvent(now, EventKind.ESCALATION, "", ACTOR)
        reached = self.ladders.roster.reach(step, now)
        paged = [self._page(incident_id, one, event, notices) for one in reached]
        parts = [text for text, _ in paged]
        following = policy.after(current.step, current.round)
        nxt = following or (-1, current.round)
        self._set(Escalation(incident_id, policy.name, nxt[0], nxt[1], now + step.wait, current.started), notices)
        wait = span(step.wait)
        then = f"next step in {wait}" if following else f"last step: the escalation ends in {wait}"
        text = f"{waited}{_where(policy, current)}: {'; '.join(parts) or 'no targets'}; {then} unless acknowledged"
        notices.intents[:] = [replace_text(i, text) for i in notices.intents]
        nobody = sum(1 for _, someone in paged if not someone)
        return Fired(incident_id, text, notices, policy.name, current.step + 1, nobody)

    def _page(self, incident: str, reached: Reached, event: TimelineEvent, notices: Notices) -> tuple[str, bool]:
        """Write the rows that page ``reached``; how the timeline says it, and whether anything was sent."""
        if reached.ref.kind is RefKind.CHANNEL:
            target = Target.parse(reached.ref.name)
            if target.channel not in self.ladders.kinds:
                return f"channel {target} is not configured", False
            route = f"escalation {reached.ref}"
            notices.targets.append((incident, target, route))
            notices.intents.append(self._intent(incident, target, event, route))
            return f"paged {target}", True
        if reached.nobody:
            known = reached.ref.kind is RefKind.PERSON or reached.ref.name in self.ladders.roster.schedules
            return (f"nobody on call in {reached.ref}" if known else f"{reached.ref} is not configured"), False
        person = self.ladders.roster.people[reached.person]
        sent = len(notices.intents)
        how = self._contacts(incident, person, event, notices)
        where = f" ({reached.ref})" if reached.ref.kind is RefKind.SCHEDULE else ""
        if len(notices.intents) > sent:
            return f"paged {person.name}{where} by {how}", True
        unreached = f"{person.name}{where} has no contact point to page"
        return (f"{unreached} ({how})" if how else unreached), False

    def _contacts(self, incident: str, person: Person, event: TimelineEvent, notices: Notices) -> str:
        said = []
        route = f"{PAGE_ROUTE}{person.name}"
        for contact, target in self.ladders.reaching(person):
            if target is None:
                said.append(f"no {contact.kind} channel")
                continue
            notices.targets.append((incident, target, route))
            due = event.at + contact.after if contact.after else None
            notices.intents.append(self._intent(incident, target, event, route, due))
            said.append(f"{contact.kind} after {span(contact.after)}" if contact.after else contact.kind)
        return ", ".join(said)

    def _intent(
        self, incident: str, target: Target, event: TimelineEvent, route: str, due: datetime | None = None
    ) -> Intent:
        key = event_key(Signal.PAGED, event)
        kind = self.ladders.kinds[target.channel]
        return Intent(incident, Signal.PAGED, key, target, kind, "", ACTOR, event.at, route=route, due=due)

    def _start(self, incident: Incident, now: datetime, notices: Notices) -> None:
        policy = self.ladders.choose(incident)
        if policy is None:
            return
        if incident.id in self.state:
            notices.cancel.add(incident.id)  # a stricter policy takes over: the old one's later contacts go
        self._set(Escalation(incident.id, policy.name, 0, 0, now, now), notices)

    def _stop(self, incident: str, notices: Notices, *, cancel: bool = True) -> None:
        """End ``incident``'s escalation; with ``cancel``, its pages still waiting are not sent."""
        if self.state.pop(incident, None) is not None:
            notices.escalations[incident] = None
            if cancel:
                notices.cancel.add(incident)

    def _set(self, escalation: Escalation, notices: Notices | None = None) -> None:
        self.state[escalation.incident] = escalation
        heapq.heappush(self._heap, (escalation.due, escalation.incident))
        if notices is not None:
            notices.escalations[escalation.incident] = escalation


def replace_text(intent: Intent, text: str) -> Intent:
    """The intent telling ``text`` (the step's whole line, known once every target is paged)."""
    return replace(intent, text=text)


def span(duration: timedelta) -> str:
    """``5m``, ``1h30m``, ``45s``, ``0s``: a wait as people write it."""
    seconds = int(duration.total_seconds())
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def _rounds(rounds: int) -> str:
    return "1 round" if rounds == 1 else f"{rounds} rounds"


def _where(policy: Policy, at: Escalation) -> str:
    where = f"{policy.name} step {at.step + 1}/{len(policy.steps)}"
    return where + (f", round {at.round + 1}/{policy.rounds}" if policy.rounds > 1 else "")


def _waited(policy: Policy, at: Escalation) -> str:
    """``no acknowledgement in 5m: `` after a step's wait (empty before the first step)."""
    if at.step == 0 and at.round == 0:
        return ""
    before = policy.steps[at.step - 1] if at.step > 0 else policy.steps[-1]
    return f"no acknowledgement in {span(before.wait)}: "


@dataclass(frozen=True, slots=True)
class Planned:
    """One line of an escalation's plan: at ``at``, step ``where`` reaches ``who`` ``how``."""

    at: datetime
    where: str
    who: str
    how: str = ""


def plan(ladders: Ladders, policy: Policy, start: Escalation) -> list[Planned]:
    """Who gets what, when, through which channel, if nobody acknowledges, from where ``start`` stands,
    under the schedules as they will be at each step (``receiver escalation plan``). Pure."""
    lines: list[Planned] = []
    at, step, round = start.due, start.step, start.round
    while step >= 0:
        where = _where(policy, Escalation(start.incident, policy.name, step, round, at, start.started))
        for reached in ladders.roster.reach(policy.steps[step], at):
            lines.extend(_planned(ladders, reached, at, where))
        at += policy.steps[step].wait
        step, round = policy.after(step, round) or (-1, round)
    lines.append(Planned(at, f"escalation {policy.name} ends", "nobody acknowledged"))
    return lines


def _planned(ladders: Ladders, reached: Reached, at: datetime, where: str) -> list[Planned]:
    if reached.ref.kind is RefKind.CHANNEL:
        return [Planned(at, where, str(reached.ref), f"to {Target.parse(reached.ref.name)}")]
    if reached.nobody:
        return [Planned(at, where, f"nobody on call in {reached.ref}")]
    who = reached.person + (f" ({reached.ref})" if reached.ref.kind is RefKind.SCHEDULE else "")
    person = ladders.roster.people[reached.person]
    found = [
        Planned(at + rule.after, where, who, f"{rule.kind} to {target}" if target else f"no {rule.kind} channel")
        for rule, target in ladders.reaching(person)
    ]
    return found or [Planned(at, where, who, "no contact point")]
