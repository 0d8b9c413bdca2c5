"""Schedules evaluated as pure functions of (schedule, instant): who is on call, and the shifts in a window.

A rotation hands off in wall-clock local time: its shift boundaries are local date-times laid out from
its start by a repeating pattern of shift lengths (one length for hourly, daily or weekly rotations;
several for a custom pattern such as Sun–Wed / Thu–Sat = 4 days, 3 days). A boundary becomes an instant
at the first occurrence of its local time (``fold=0`` when the clock falls back) or, when the clock
springs forward over it, at the first valid instant after (the transition). Each shift ends where the
next begins, so there is no gap and no double coverage; a shift lying wholly inside a skipped hour is
empty (only hourly rotations have such shifts). Layers stack (a higher layer wins where it has someone)
and overrides win over every layer. Pure: no clock reading, no I/O.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import accumulate, pairwise
from zoneinfo import ZoneInfo

HOURLY = (timedelta(hours=1),)
DAILY = (timedelta(days=1),)
WEEKLY = (timedelta(weeks=1),)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Rotation:
    """Participants taking turns, in order, one shift each, with shift lengths repeating ``pattern``.

    ``start`` is the naive local date-time (in the schedule's zone) where participant 0's first shift
    begins; its time of day is the handoff time. Before ``start`` the rotation covers nobody.
    """

    participants: tuple[str, ...]
    pattern: tuple[timedelta, ...]
    start: datetime

    def __post_init__(self) -> None:
        if not self.participants:
            raise ValueError("a rotation needs at least one participant")
        if not self.pattern or any(length <= timedelta(0) for length in self.pattern):
            raise ValueError("a rotation's shift lengths must be positive and there must be at least one")
        if self.start.tzinfo is not None:
            raise ValueError("a rotation's start is a local wall-clock time: give it without a time zone")

    @property
    def handoff(self) -> time:
        """The local time of day of the rotation's first handoff."""
        return self.start.time()

    @property
    def cycle(self) -> timedelta:
        """The wall-clock length of one pass through the pattern."""
        return sum(self.pattern, timedelta(0))


@dataclass(frozen=True)
class Layer:
    """Rotations stacked in one layer; the one that started most recently is in charge once started."""

    rotations: tuple[Rotation, ...]


@dataclass(frozen=True)
class Override:
    """``person`` takes the schedule from ``start`` (inclusive) to ``end`` (exclusive), aware instants."""

    person: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("an override's start and end must carry a time zone")
        if self.end <= self.start:
            raise ValueError("an override must end after it starts")

    def covers(self, instant: datetime) -> bool:
        """Whether ``instant`` lies in the override's window."""
        return self.start <= instant < self.end


@dataclass(frozen=True)
class Schedule:
    """A named schedule: layers from lowest to highest, and overrides (a later one wins over an earlier)."""

    name: str
    zone: ZoneInfo
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True)
class Shift:
    """``person`` is on call from ``start`` (inclusive) to ``end`` (exclusive), aware UTC instants."""

    person: str
    start: datetime
    end: datetime


def instant_of(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a local handoff time happens: its first occurrence, or the transition it falls in.

    Pure. An ambiguous time (clock falling back) is taken with ``fold=0``; a skipped time (clock
    springing forward) becomes the first valid instant after it, which is the transition itself.
    """
    earliest = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if earliest.astimezone(zone).replace(tzinfo=None) == local:
        return earliest
    return _transition(local.replace(tzinfo=zone, fold=1).astimezone(UTC), earliest, zone)


def _transition(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in (``before``, ``after``] with the offset ``after`` has (bisection to the second)."""
    offset = after.astimezone(zone).utcoffset()
    while after - before > _SECOND:
        middle = before + (after - before) // 2
        if middle.astimezone(zone).utcoffset() == offset:
            after = middle
        else:
            before = middle
    return after


def boundary(rotation: Rotation, index: int) -> datetime:
    """The local wall-clock date-time at which shift ``index`` of ``rotation`` begins (pure)."""
    cycles, position = divmod(index, len(rotation.pattern))
    return rotation.start + rotation.cycle * cycles + sum(rotation.pattern[:position], timedelta(0))


def _wall_index(rotation: Rotation, local: datetime) -> int:
    """The index of the shift whose local wall-clock span holds ``local`` (-1 before the start)."""
    elapsed = local - rotation.start
    if elapsed < timedelta(0):
        return -1
    cycles, rest = divmod(elapsed, rotation.cycle)
    offsets = list(accumulate(rotation.pattern, initial=timedelta(0)))
    return cycles * len(rotation.pattern) + bisect_right(offsets, rest) - 1


def shift_index(rotation: Rotation, zone: ZoneInfo, instant: datetime) -> int:
    """The index of the rotation's shift holding ``instant`` (-1 before the first); a few steps, pure.

    The wall-clock guess is off by at most a shift or two around a transition: a repeated hour puts
    ``instant`` after a boundary its local time reads as before, and empty shifts are stepped over.
    """
    index = _wall_index(rotation, instant.astimezone(zone).replace(tzinfo=None))
    while instant_of(boundary(rotation, index + 1), zone) <= instant:
        index += 1
    while index >= 0 and instant_of(boundary(rotation, index), zone) > instant:
        index -= 1
    return index


def rotation_person(rotation: Rotation, zone: ZoneInfo, instant: datetime) -> str | None:
    """Who the rotation has on call at ``instant``, or None before it starts (pure)."""
    index = shift_index(rotation, zone, instant)
    return None if index < 0 else rotation.participants[index % len(rotation.participants)]


def layer_person(layer: Layer, zone: ZoneInfo, instant: datetime) -> str | None:
    """Who the layer has on call: the most recently started of its rotations that has begun (pure)."""
    started = [r for r in layer.rotations if instant_of(r.start, zone) <= instant]
    if not started:
        return None
    latest = max(started, key=lambda r: instant_of(r.start, zone))
    return rotation_person(latest, zone, instant)


def who(schedule: Schedule, instant: datetime) -> str | None:
    """Who is on call at ``instant`` (aware): the last override covering it, else the highest layer's person.

    Pure: a function of the schedule and the instant only; None when nobody is.
    """
    if instant.tzinfo is None:
        raise ValueError("who is on call is asked of an aware instant")
    for override in reversed(schedule.overrides):
        if override.covers(instant):
            return override.person
    for layer in reversed(schedule.layers):
        person = layer_person(layer, schedule.zone, instant)
        if person is not None:
            return person
    return None


def _rotation_boundaries(rotation: Rotation, zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """The rotation's handoff instants in (``start``, ``end``)."""
    index = max(shift_index(rotation, zone, start), -1) + 1
    while (moment := instant_of(boundary(rotation, index), zone)) < end:
        if moment > start:
            yield moment
        index += 1


def _boundaries(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every instant in [``start``, ``end``] at which who is on call may change, in order."""
    moments = {start, end}
    for layer in schedule.layers:
        for rotation in layer.rotations:
            moments.update(_rotation_boundaries(rotation, schedule.zone, start, end))
    for override in schedule.overrides:
        moments.update(m for m in (override.start, override.end) if start < m < end)
    return sorted(moments)


def shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """Who is on call from ``start`` to ``end`` (aware), as shifts in UTC; a person's adjacent spans merge.

    Pure. Consecutive shifts meet exactly (no gap, no overlap) wherever somebody is on call; a span
    where nobody is has no shift.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("shifts are asked for between aware instants")
    moments = _boundaries(schedule, start.astimezone(UTC), end.astimezone(UTC))
    found: list[Shift] = []
    for begin, finish in pairwise(moments):
        person = who(schedule, begin)
        if person is None:
            continue
        if found and found[-1].person == person and found[-1].end == begin:
            found[-1] = Shift(person, found[-1].start, finish)
        else:
            found.append(Shift(person, begin, finish))
    return found
