"""Schedules evaluated as pure functions of (schedule, instant): who is on call, and the shifts in a window.

A rotation hands off in wall-clock local time: its shift boundaries are local date-times laid out from
its start by a repeating pattern of shift lengths (one length for hourly, daily or weekly rotations;
several for a custom pattern such as Sun–Wed / Thu–Sat = 4 days, 3 days). A boundary becomes an instant
at the first occurrence of its local time (``fold=0`` when the clock falls back) or, when the clock
springs forward over it, at the first valid instant after (the transition). Each shift ends where the
next begins, so there is no gap and no double coverage; a shift lying wholly inside a skipped hour is
empty (only hourly rotations have such shifts). A rotation may be active on some weekdays only
(``days``), have off slots (recurring local windows in which it covers nobody, placed like handoffs)
and people joining or leaving at local date-times; whose turn each shift is, is counted in
``receiver.oncall.turns``. Layers stack (a higher layer wins where it has someone; a rotation that is
off or has nobody leaves the time to the layers below) and overrides win over every layer. Pure: no
clock reading, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from receiver.oncall.turns import DAY, EVERY_DAY, Change, Turns, counts_days, wall_index
from receiver.oncall.turns import boundary as wall_boundary

HOURLY = (timedelta(hours=1),)
DAILY = (timedelta(days=1),)
WEEKLY = (timedelta(weeks=1),)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class OffSlot:
    """A recurring local window in which a rotation covers nobody (its turns go on underneath).

    It begins at ``begin`` on each of ``days`` (weekday numbers, Monday 0) and ends at ``end`` that day,
    or the next day when ``end`` is not after ``begin`` (``begin == end``: 24 hours; the default is the
    whole day). Both ends are placed in the schedule's zone like handoffs (``instant_of``).
    """

    days: frozenset[int] = EVERY_DAY
    begin: time = time(0)
    end: time = time(0)

    def __post_init__(self) -> None:
        if not self.days or not self.days <= EVERY_DAY:
            raise ValueError("an off slot's days are weekday numbers 0 (Monday) to 6 (Sunday), at least one")
        if self.begin.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("an off slot's times are local wall-clock times: give them without a time zone")

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The local wall-clock window the slot has beginning on ``day``, or None when ``day`` has none."""
        if day.weekday() not in self.days:
            return None
        ends = day + DAY if self.end <= self.begin else day
        return datetime.combine(day, self.begin), datetime.combine(ends, self.end)


@dataclass(frozen=True)
class Rotation:
    """Participants taking turns, in order, one shift each, with shift lengths repeating ``pattern``.

    ``start`` is the naive local date-time (in the schedule's zone) where the first turn begins; its time
    of day is the handoff time. Before ``start`` the rotation covers nobody. ``days`` (weekday numbers,
    Monday 0) are the days it is active on: if the pattern repeats within a day (hourly, daily,
    ``[12h, 12h]``) a shift beginning on another day is not a turn and is skipped without skipping
    anyone; otherwise (weekly, ``[4d, 3d]``) the other days are covered by nobody, like ``off`` slots,
    and turns go on. ``changes`` are joins and leaves of participants at local date-times
    (``receiver.oncall.turns``).
    """

    participants: tuple[str, ...]
    pattern: tuple[timedelta, ...]
    start: datetime
    days: frozenset[int] = EVERY_DAY
    off: tuple[OffSlot, ...] = ()
    changes: tuple[Change, ...] = ()
    turns: Turns = field(init=False, repr=False, compare=False)
    closed: tuple[OffSlot, ...] = field(init=False, repr=False, compare=False)
    """The off slots with, for a pattern longer than a day, the days it is not active on."""

    def __post_init__(self) -> None:
        if not self.participants:
            raise ValueError("a rotation needs at least one participant")
        if not self.pattern or any(length <= timedelta(0) for length in self.pattern):
            raise ValueError("a rotation's shift lengths must be positive and there must be at least one")
        if self.start.tzinfo is not None:
            raise ValueError("a rotation's start is a local wall-clock time: give it without a time zone")
        if not self.days or not self.days <= EVERY_DAY:
            raise ValueError("a rotation's days are weekday numbers 0 (Monday) to 6 (Sunday), at least one")
        for change in self.changes:
            if change.person not in self.participants or change.at.tzinfo is not None:
                raise ValueError(f"a join or leave names a participant at a local time: {change!r}")
        turns = Turns.of(self.participants, self.pattern, self.start, days=self.days, changes=self.changes)
        masked = self.days != EVERY_DAY and not counts_days(self.pattern)
        object.__setattr__(self, "turns", turns)
        object.__setattr__(self, "closed", self.off + ((OffSlot(EVERY_DAY - self.days),) if masked else ()))

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
    return wall_boundary(rotation.start, rotation.pattern, index)


def _wall_index(rotation: Rotation, local: datetime) -> int:
    """The index of the shift whose local wall-clock span holds ``local`` (-1 before the start)."""
    return -1 if local < rotation.start else wall_index(rotation.start, rotation.pattern, local)


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
    """Who the rotation has on call at ``instant``: None before it starts, off, or with nobody (pure)."""
    index = shift_index(rotation, zone, instant)
    if index < 0 or is_off(rotation, zone, instant):
        return None
    return rotation.turns.person(index)


def is_off(rotation: Rotation, zone: ZoneInfo, instant: datetime) -> bool:
    """Whether ``instant`` lies in one of the rotation's off slots or inactive days (pure, a few lookups).

    A window begins on a local date and ends by the same time the next day, so only windows beginning
    on the instant's local date or the day before can hold it.
    """
    if not rotation.closed:
        return False
    today = instant.astimezone(zone).date()
    for day in (today - DAY, today):
        for slot in rotation.closed:
            window = slot.window(day)
            if window is not None and instant_of(window[0], zone) <= instant < instant_of(window[1], zone):
                return True
    return False


def _off_edges(rotation: Rotation, zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """The instants in (``start``, ``end``) where one of the rotation's off windows begins or ends."""
    day, last = start.astimezone(zone).date() - DAY, end.astimezone(zone).date() + DAY
    while rotation.closed and day <= last:
        for slot in rotation.closed:
            moments = (instant_of(local, zone) for local in slot.window(day) or ())
            yield from (m for m in moments if start < m < end)
        day += DAY


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
            moments.update(_off_edges(rotation, schedule.zone, start, end))
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
