"""Escalation policies as values: who a step reaches, how each person is reached, and where a ladder stands.

A policy is an ordered list of steps; each step notifies targets (people, schedules, channels) and then
waits. If nobody acknowledges, the next step fires; after the last, the policy starts over, up to
``repeat`` more rounds. A person is reached by their notification rules ("Slack at once, email after
5 minutes"). A schedule is resolved to whoever is on call when the step fires (``schedules.who``).

``Escalation`` is where one incident's ladder stands: the next step, its round, and when it is due. The
engine keeps it as a deadline in the store (``receiver.notify.escalation`` decides, the store writes it
with the change). Pure: no clock reading, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from receiver.oncall.schedules import Schedule, who

CONTACT_KINDS = ("slack", "email")
"""The contact points a person's rules may name (each reached through a configured channel of that kind),
besides ``channel:NAME``: a channel of their own (a PagerDuty routing key that pages them, an SMS gateway)."""
OWN_CHANNEL = "channel:"


class RefKind(StrEnum):
    """What a step's target names."""

    PERSON = "person"
    SCHEDULE = "schedule"
    CHANNEL = "channel"


@dataclass(frozen=True, slots=True, order=True)
class Ref:
    """A step's target: ``person:alice``, ``schedule:primary`` or ``channel:pagerduty`` (a notify channel,
    optionally ``channel:slack:C0123ABCD`` for another destination in it)."""

    kind: RefKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Ref:
        """``kind:name``; ValueError naming what is wrong."""
        kind, sep, name = text.partition(":")
        if not sep or not name:
            raise ValueError(f"{text!r}: a target is person:NAME, schedule:NAME or channel:NAME")
        try:
            return cls(RefKind(kind), name)
        except ValueError:
            raise ValueError(f"{text!r}: {kind!r} is not person, schedule or channel") from None


@dataclass(frozen=True, slots=True)
class Contact:
    """One of a person's rules: reach them by ``kind`` (``slack``, ``email``, ``channel:NAME``), ``after`` the
    step fires."""

    kind: str
    after: timedelta = timedelta(0)

    @property
    def channel(self) -> str | None:
        """The notify channel of their own a ``channel:NAME`` rule names (None for slack and email)."""
        return self.kind.removeprefix(OWN_CHANNEL) if self.kind.startswith(OWN_CHANNEL) else None


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who can be paged, and how: their addresses by contact kind and their rules."""

    name: str
    addresses: Mapping[str, str]
    """contact kind -> their address there (a Slack member id, an email address)."""
    rules: tuple[Contact, ...] = ()
    """Empty: every contact point they have, at once."""

    def contacts(self) -> tuple[Contact, ...]:
        """The rules that can be followed (a rule naming a contact point they lack is left out)."""
        rules = self.rules or tuple(Contact(kind) for kind in CONTACT_KINDS if kind in self.addresses)
        return tuple(rule for rule in rules if rule.kind in self.addresses or rule.channel)


@dataclass(frozen=True, slots=True)
class Step:
    """Notify ``targets`` at once, then wait ``wait`` for an acknowledgement."""

    targets: tuple[Ref, ...]
    wait: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Policy:
    """Steps in order, gone through ``1 + repeat`` times while nobody acknowledges."""

    name: str
    steps: tuple[Step, ...]
    repeat: int = 0

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"policy {self.name}: a policy needs at least one step")
        if self.repeat < 0:
            raise ValueError(f"policy {self.name}: repeat cannot be negative")

    @property
    def rounds(self) -> int:
        """How many times its steps are gone through at most."""
        return 1 + self.repeat

    def after(self, step: int, round: int) -> tuple[int, int] | None:
        """The (step, round) after ``(step, round)``; None when that was the last."""
        if step + 1 < len(self.steps):
            return step + 1, round
        if round + 1 < self.rounds:
            return 0, round + 1
        return None


@dataclass(frozen=True, slots=True)
class Escalation:
    """Where an incident's ladder stands: ``step`` of ``round`` fires at ``due`` unless acknowledged first.

    ``step == -1`` means the ladder is exhausted: ``due`` is when the last step's wait ends (then the
    timeline says nobody acknowledged, and the escalation ends).
    """

    incident: str
    policy: str
    step: int
    round: int
    due: datetime
    started: datetime

    @property
    def exhausted(self) -> bool:
        """Every step of every round has fired; only the last wait is left."""
        return self.step < 0


@dataclass(frozen=True, slots=True)
class Reached:
    """Who a step's target reaches when it fires: a person (from a schedule or named), a channel, or nobody."""

    ref: Ref
    person: str = ""
    """The person paged (empty for a channel target, or when a schedule has nobody on call)."""

    @property
    def nobody(self) -> bool:
        """A schedule with nobody on call, or a person or schedule that is not configured."""
        return self.ref.kind is not RefKind.CHANNEL and not self.person


@dataclass(frozen=True, slots=True)
class Roster:
    """The people and schedules a step's targets are resolved against."""

    people: Mapping[str, Person] = field(default_factory=dict)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)

    def reach(self, step: Step, at: datetime) -> list[Reached]:
        """Whom each of the step's targets reaches at ``at`` (a person reached twice is paged once)."""
        reached: list[Reached] = []
        seen: set[str] = set()
        for ref in step.targets:
            for one in self._resolve(ref, at):
                if one.person and one.person in seen:
                    continue
                seen.add(one.person)
                reached.append(one)
        return reached

    def _resolve(self, ref: Ref, at: datetime) -> list[Reached]:
        if ref.kind is RefKind.CHANNEL:
            return [Reached(ref)]
        if ref.kind is RefKind.PERSON:
            return [Reached(ref, ref.name if ref.name in self.people else "")]
        schedule = self.schedules.get(ref.name)
        person = who(schedule, at) if schedule is not None else None
        return [Reached(ref, person if person in self.people else "")] if person else [Reached(ref)]


def conventional(people: Mapping[str, Person], schedules: Mapping[str, Schedule]) -> dict[str, Policy]:
    """The practice's ladders when none is configured, over whatever of its names exist.

    ``default``: primary, wait 5m; secondary, wait 5m; manager, wait 5m. ``sev1``: primary, manager and
    lead at once, wait 5m; secondary, wait 5m. Each name is a schedule if one has it, else a person; a
    name neither has is left out, and a policy left with no step is not made.
    """

    def ref(name: str) -> Ref | None:
        if name in schedules:
            return Ref(RefKind.SCHEDULE, name)
        return Ref(RefKind.PERSON, name) if name in people else None

    def step(*names: str) -> Step | None:
        refs = tuple(r for r in (ref(n) for n in names) if r is not None)
        return Step(refs) if refs else None

    ladders = {"default": [step("primary"), step("secondary"), step("manager")]}
    ladders["sev1"] = [step("primary", "manager", "lead"), step("secondary")]
    policies = {}
    for name, steps in ladders.items():
        kept = tuple(s for s in steps if s is not None)
        if kept:
            policies[name] = Policy(name, kept)
    return policies
