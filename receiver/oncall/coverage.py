"""The coverage check: where the configured schedules leave nobody on call in the weeks ahead.

A schedule whose rotation starts next month, an override that ends before the next rotation begins, a
layer that only covers working hours: each leaves a span where a page would reach no one. The check
looks ``weeks`` ahead and reports every such span as a ``Gap``; ``receiver config check`` prints them,
the engine logs them at start and daily, and ``/metrics`` exports their total per schedule. A report
holds ``Finding`` values of several kinds so that other problems of the same sort (an escalation step
that resolves to nobody) join it without changing its readers. Pure: the instant is given.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from receiver.oncall.policies import Policy, RefKind, Step
from receiver.oncall.schedules import Schedule, Shift, shifts

DEFAULT_WEEKS = 4


class Kind(StrEnum):
    """What a finding is about (the lead's escalation policies add the kind of a step that pages nobody)."""

    GAP = "gap"
    EMPTY_STEP = "empty_step"


@dataclass(frozen=True)
class Gap:
    """Nobody is on call in ``schedule`` from ``start`` (inclusive) to ``end`` (exclusive), UTC instants."""

    schedule: str
    start: datetime
    end: datetime
    kind: Kind = field(default=Kind.GAP, init=False)

    @property
    def seconds(self) -> float:
        """How long the gap lasts."""
        return (self.end - self.start).total_seconds()

    @property
    def where(self) -> str:
        """The settings key the finding is about."""
        return f"oncall.schedules.{self.schedule}"

    def describe(self) -> str:
        """One line for people: the span in UTC and its length."""
        return f"nobody is on call from {_utc(self.start)} to {_utc(self.end)} ({_length(self.end - self.start)})"


@dataclass(frozen=True)
class EmptyStep:
    """Step ``step`` (from 0) of ``policy`` pages nobody from ``start`` to ``end``: every schedule it names has
    nobody on call then, and it names no one else who can be reached (a person with a contact point, a channel)."""

    policy: str
    step: int
    start: datetime
    end: datetime
    kind: Kind = field(default=Kind.EMPTY_STEP, init=False)

    @property
    def where(self) -> str:
        """The settings key the finding is about."""
        return f"oncall.policies.{self.policy}.steps.{self.step}"

    def describe(self) -> str:
        """One line for people."""
        span = f"{_utc(self.start)} to {_utc(self.end)} ({_length(self.end - self.start)})"
        return f"this escalation step pages nobody from {span}: every schedule it names has nobody on call"


Finding = Gap | EmptyStep
"""Every kind of finding; each has ``kind``, ``where`` (a settings key) and ``describe()``. Add a kind as a
dataclass with those three, to this union and to ``Kind``."""


@dataclass(frozen=True)
class Coverage:
    """What the check found over [``start``, ``end``) for ``schedules`` (every schedule checked, by name)."""

    start: datetime
    end: datetime
    schedules: tuple[str, ...]
    findings: tuple[Finding, ...] = ()

    @property
    def gaps(self) -> list[Gap]:
        """The findings that are gaps, by schedule then start."""
        return [f for f in self.findings if isinstance(f, Gap)]

    def gap_seconds(self) -> dict[str, float]:
        """Uncovered seconds in the window, for every schedule checked (0 when it is covered throughout)."""
        totals = dict.fromkeys(self.schedules, 0.0)
        for gap in self.gaps:
            totals[gap.schedule] += gap.seconds
        return totals


def gaps(schedule: Schedule, start: datetime, end: datetime) -> list[Gap]:
    """The spans of [``start``, ``end``) where nobody is on call in ``schedule``, in order (pure)."""
    return uncovered(schedule.name, shifts(schedule, start, end), start.astimezone(UTC), end.astimezone(UTC))


def uncovered(name: str, found: list[Shift], start: datetime, end: datetime) -> list[Gap]:
    """What ``found`` (ordered, within [``start``, ``end``), not overlapping) leaves uncovered, as gaps."""
    holes: list[Gap] = []
    reached = start
    for shift in found:
        if shift.start > reached:
            holes.append(Gap(name, reached, shift.start))
        reached = max(reached, shift.end)
    if reached < end:
        holes.append(Gap(name, reached, end))
    return holes


def check(
    schedules: Mapping[str, Schedule],
    now: datetime,
    weeks: int = DEFAULT_WEEKS,
    policies: Mapping[str, Policy] | None = None,
    reachable: Collection[str] = (),
) -> Coverage:
    """The coverage of every schedule from ``now`` for ``weeks`` weeks, and the escalation steps of
    ``policies`` that page nobody then (``reachable``: the people who have a contact point). Pure."""
    start = now.astimezone(UTC)
    end = start + timedelta(weeks=weeks)
    names = tuple(sorted(schedules))
    holes = {name: gaps(schedules[name], start, end) for name in names}
    found: list[Finding] = [gap for name in names for gap in holes[name]]
    for name, policy in sorted((policies or {}).items()):
        for n, step in enumerate(policy.steps):
            found.extend(EmptyStep(name, n, a, b) for a, b in _nobody(step, holes, reachable, start, end))
    return Coverage(start, end, names, tuple(found))


Span = tuple[datetime, datetime]


def _nobody(
    step: Step, holes: Mapping[str, list[Gap]], reachable: Collection[str], start: datetime, end: datetime
) -> list[Span]:
    """Where every target of ``step`` reaches nobody: the intersection of each target's spans of nobody
    (a person without a contact point, or a schedule that is not configured, reaches nobody throughout)."""
    spans: list[Span] = [(start, end)]
    for ref in step.targets:
        if ref.kind is RefKind.CHANNEL or (ref.kind is RefKind.PERSON and ref.name in reachable):
            return []
        if ref.kind is RefKind.SCHEDULE and ref.name in holes:
            spans = _intersect(spans, [(g.start, g.end) for g in holes[ref.name]])
    return spans


def _intersect(a: list[Span], b: list[Span]) -> list[Span]:
    """The spans in both ordered, non-overlapping lists."""
    found: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            found.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return found


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _length(span: timedelta) -> str:
    """``3d 4h 5m`` (seconds dropped unless the span is shorter than a minute)."""
    days, rest = divmod(int(span.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts) or f"{seconds}s"
