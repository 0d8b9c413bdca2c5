"""What the schedule tests share: the zones and years the properties cover, their DST transitions, instants
drawn near them, and the checks that a list of shifts tiles its window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from receiver.oncall.schedules import Layer, Override, Rotation, Schedule, Shift

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = (BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney"))
FIRST, LAST = datetime(2020, 1, 1, tzinfo=UTC), datetime(2035, 1, 1, tzinfo=UTC)
ABC = ("alice", "bob", "carol")


def schedule_of(*rotations: Rotation, zone: ZoneInfo = BERLIN, overrides: tuple[Override, ...] = ()) -> Schedule:
    """A schedule with one layer per rotation, lowest first."""
    return Schedule("primary", zone, tuple(Layer((r,)) for r in rotations), overrides)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0) -> datetime:
    """An aware Berlin instant."""
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN, fold=fold)


@cache
def transitions(zone: ZoneInfo) -> tuple[datetime, ...]:
    """Every instant in 2020–2035 at which ``zone``'s offset changes (found by a daily scan, then bisection)."""
    found: list[datetime] = []
    day = FIRST
    while day < LAST:
        if day.astimezone(zone).utcoffset() != (day + timedelta(days=1)).astimezone(zone).utcoffset():
            found.append(_bisect(day, day + timedelta(days=1), zone))
        day += timedelta(days=1)
    return tuple(found)


def _bisect(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first second in (``before``, ``after``] with ``after``'s offset."""
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) // 2
        if middle.astimezone(zone).utcoffset() == after.astimezone(zone).utcoffset():
            after = middle
        else:
            before = middle
    return after


@st.composite
def instants(draw: st.DrawFn, zone: ZoneInfo) -> datetime:
    """An instant from 2020 to 2035, half the time within three hours of one of the zone's transitions."""
    if draw(st.booleans()):
        return draw(st.datetimes(FIRST.replace(tzinfo=None), LAST.replace(tzinfo=None), timezones=st.just(UTC)))
    transition = draw(st.sampled_from(transitions(zone)))
    return transition + timedelta(seconds=draw(st.integers(-3 * 3600, 3 * 3600)))


def assert_contiguous(listed: list[Shift], start: datetime, end: datetime) -> None:
    """Shifts cover exactly [start, end): each begins where the last ended, none is empty."""
    assert listed[0].start == start and listed[-1].end == end
    assert all(s.start < s.end for s in listed)
    assert all(a.end == b.start and a.person != b.person for a, b in pairwise(listed))


def assert_disjoint(listed: list[Shift], start: datetime, end: datetime) -> None:
    """Shifts lie in [start, end) in order, none empty, none overlapping (no double coverage)."""
    assert all(start <= s.start < s.end <= end for s in listed)
    assert all(a.end <= b.start and (a.end < b.start or a.person != b.person) for a, b in pairwise(listed))


def holder(listed: list[Shift], instant: datetime) -> str | None:
    """The person of the one shift holding ``instant`` (None when no shift does)."""
    found = [s.person for s in listed if s.start <= instant < s.end]
    assert len(found) <= 1
    return found[0] if found else None
