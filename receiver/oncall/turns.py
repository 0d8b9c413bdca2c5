"""Whose turn a rotation's shift is: the wall-clock arithmetic of active days, joins and leaves.

A rotation's shifts are numbered from its start by their local wall-clock boundaries (shift 0 begins at
the start). Not every shift need be a turn: a rotation whose pattern repeats within a day (hourly,
daily, ``[12h, 12h]``) and names its active ``days`` has as turns only the shifts that begin on an
active day, numbered without the others, so a weekday-only daily rotation A, B, C gives Mon A … Fri B,
then Mon C: the mask skips no one. Whose a turn is changes at joins and leaves: a change takes effect at
the first turn beginning at or after it, where an epoch starts with the members as they are then,
continuing with the member after the one on duty in the turn before (in the order participants are
listed). Everything is counted arithmetically (a few weekday steps, a bisection over epochs), never by
walking from the start. Zone-free and pure: naive local wall-clock date-times only; the schedule's zone
is applied by ``receiver.oncall.schedules``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import accumulate

DAY = timedelta(days=1)
EVERY_DAY = frozenset(range(7))
"""Weekday numbers as ``date.weekday()`` gives them: Monday 0 … Sunday 6."""


def boundary(start: datetime, pattern: Sequence[timedelta], index: int) -> datetime:
    """The local wall-clock date-time at which shift ``index`` begins (negative: before ``start``); pure."""
    cycles, position = divmod(index, len(pattern))
    return start + sum(pattern, timedelta(0)) * cycles + sum(pattern[:position], timedelta(0))


def wall_index(start: datetime, pattern: Sequence[timedelta], local: datetime) -> int:
    """The index of the shift whose wall-clock span holds ``local``, counted back before ``start`` too; pure."""
    cycles, rest = divmod(local - start, sum(pattern, timedelta(0)))
    offsets = list(accumulate(pattern, initial=timedelta(0)))
    return cycles * len(pattern) + bisect_right(offsets, rest) - 1


def first_index_from(start: datetime, pattern: Sequence[timedelta], local: datetime) -> int:
    """The index of the first shift beginning at or after ``local`` (negative when that is before the start)."""
    index = wall_index(start, pattern, local)
    return index + 1 if boundary(start, pattern, index) < local else index


@dataclass(frozen=True)
class Change:
    """``person`` joins (``joins``) or leaves the rotation at the local wall-clock date-time ``at``."""

    person: str
    at: datetime
    joins: bool


@dataclass(frozen=True)
class DayCount:
    """The turns of a rotation whose pattern repeats within a day and that is active on ``days`` only.

    Every local date holds ``per_day`` shift beginnings at the same times of day; ``lead`` of them lie,
    on the start's date, before the start (they do not exist). A shift belongs to the date it begins on.
    """

    start: datetime
    days: frozenset[int]
    per_day: int
    lead: int

    @classmethod
    def of(cls, start: datetime, pattern: Sequence[timedelta], days: frozenset[int]) -> DayCount:
        """The count for ``pattern`` (whose cycle divides a day) from ``start`` on ``days``."""
        per_day = len(pattern) * (DAY // sum(pattern, timedelta(0)))
        midnight = datetime.combine(start.date(), time(0))
        return cls(start, days, per_day, -first_index_from(start, pattern, midnight))

    def _date(self, day: int) -> date:
        return self.start.date() + timedelta(days=day)

    def active(self, day: int) -> bool:
        """Whether the ``day``-th date from the start's is one the rotation is active on."""
        return self._date(day).weekday() in self.days

    def active_before(self, day: int) -> int:
        """How many active dates lie from the start's date up to (not including) the ``day``-th."""
        weeks, rest = divmod(day, 7)
        return weeks * len(self.days) + sum(self.active(d) for d in range(rest))

    def turn(self, index: int) -> int | None:
        """The turn number of shift ``index`` (>= 0), or None when it begins on an inactive date."""
        day, position = divmod(index + self.lead, self.per_day)
        if not self.active(day):
            return None
        return self.active_before(day) * self.per_day + position - (self.lead if self.active(0) else 0)

    def first_turn_from(self, index: int) -> int:
        """The number of the first turn at or after shift ``index`` (>= 0)."""
        day, position = divmod(index + self.lead, self.per_day)
        while not self.active(day):
            day, position = day + 1, 0
        return self.active_before(day) * self.per_day + position - (self.lead if self.active(0) else 0)


@dataclass(frozen=True)
class Epoch:
    """From turn ``turn`` on, ``members`` (positions among the participants) take turns from ``first``."""

    turn: int
    members: tuple[int, ...]
    first: int

    def member(self, turn: int) -> int | None:
        """The participant position on duty at ``turn`` (in this epoch), or None when it has no members."""
        if not self.members:
            return None
        return self.members[(self.first + turn - self.turn) % len(self.members)]


def epochs(
    participants: Sequence[str], changes: Sequence[Change], turn_at: Callable[[datetime], int]
) -> tuple[Epoch, ...]:
    """The epochs of a rotation: one from turn 0, and one from each turn where joins or leaves take effect.

    A participant whose earliest change is a join is absent until it; every change sets presence from
    the first turn at or after it (``turn_at``). A new epoch continues with the first member listed after
    the one on duty in the turn before it (cyclically): the order goes on where it was.
    """
    ordered = sorted(changes, key=lambda c: c.at)
    present = [not next((c.joins for c in ordered if c.person == name), False) for name in participants]
    by_turn: dict[int, list[Change]] = {}
    for change in ordered:
        by_turn.setdefault(turn_at(change.at), []).append(change)
    found: list[Epoch] = []
    for turn in sorted({0} | by_turn.keys()):
        cursor = _on_duty_before(found, turn)
        for change in by_turn.get(turn, []):
            present = [
                change.joins if name == change.person else p for name, p in zip(participants, present, strict=True)
            ]
        members = tuple(i for i, here in enumerate(present) if here)
        found.append(Epoch(turn, members, next((k for k, i in enumerate(members) if i > cursor), 0)))
    return tuple(found)


def _on_duty_before(found: Sequence[Epoch], turn: int) -> int:
    """The participant position last on duty before ``turn`` (-1 when nobody has been yet)."""
    for epoch in reversed(found):
        if (member := epoch.member(turn - 1)) is not None:
            return member
        turn = epoch.turn
    return -1


@dataclass(frozen=True)
class Turns:
    """Whose turn each shift of a rotation is: the active-day count (None: every shift is a turn), epochs."""

    participants: tuple[str, ...]
    count: DayCount | None
    epochs: tuple[Epoch, ...]
    starts: tuple[int, ...]
    """The first turn of each epoch, for the bisection."""

    @classmethod
    def of(
        cls,
        participants: tuple[str, ...],
        pattern: tuple[timedelta, ...],
        start: datetime,
        *,
        days: frozenset[int] = EVERY_DAY,
        changes: Sequence[Change] = (),
    ) -> Turns:
        """The turns of a rotation; ``days`` count turns only if ``pattern`` repeats within a day."""
        count = DayCount.of(start, pattern, days) if days != EVERY_DAY and counts_days(pattern) else None

        def turn_at(local: datetime) -> int:
            index = max(first_index_from(start, pattern, local), 0)
            return index if count is None else count.first_turn_from(index)

        found = epochs(participants, changes, turn_at)
        return cls(participants, count, found, tuple(e.turn for e in found))

    def person(self, index: int) -> str | None:
        """Who is on duty in shift ``index`` (>= 0): None on an inactive date or when nobody is a member."""
        turn = index if self.count is None else self.count.turn(index)
        if turn is None:
            return None
        epoch = self.epochs[bisect_right(self.starts, turn) - 1]
        member = epoch.member(turn)
        return None if member is None else self.participants[member]


def counts_days(pattern: Sequence[timedelta]) -> bool:
    """Whether a pattern repeats within a day, so that active days count its turns (else they mask time)."""
    return DAY % sum(pattern, timedelta(0)) == timedelta(0)
