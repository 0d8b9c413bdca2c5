"""Rotation shapes beyond turns in a row: active-day masks, off slots, joins and leaves, and combinations.

Tables per shape (Berlin, January 2025: Monday the 6th is the start unless said), the DST edges of off
slots, then properties over 2020–2035 and every DST transition of three zones: ``who`` agrees with
``shifts`` and no time is covered twice; time a rotation leaves uncovered is exactly its off time
(checked against wall-clock arithmetic written here); a mask skips no one (each turn is the next
participant's); off slots and masks of long shifts never move a turn; joins and leaves continue with
the member after the one on duty, and nobody is on call outside their membership.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from receiver.oncall.schedules import DAILY, HOURLY, WEEKLY, OffSlot, Rotation, shifts, who
from receiver.oncall.turns import EVERY_DAY, Change, counts_days
from tests.oncall_support import (
    ABC,
    ZONES,
    assert_disjoint,
    berlin,
    holder,
    instants,
    schedule_of,
)

WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})
MON = datetime(2025, 1, 6, 9, 0)
DAILY_WEEKDAYS = Rotation(ABC, DAILY, MON, days=WEEKDAYS)
FROM_SATURDAY = Rotation(ABC, DAILY, datetime(2025, 1, 4, 9, 0), days=WEEKDAYS)
HOURLY_WEEKDAYS = Rotation(ABC, HOURLY, datetime(2025, 1, 6, 10, 0), days=WEEKDAYS)
DAY_NIGHT = Rotation(ABC[:2], (timedelta(hours=12), timedelta(hours=12)), MON, days=WEEKDAYS)
WEEKLY_WEEKDAYS = Rotation(ABC[:2], WEEKLY, MON, days=WEEKDAYS)
SUN_WED_THU_SAT_WEEKDAYS = Rotation(ABC, (timedelta(days=4), timedelta(days=3)), datetime(2025, 1, 5, 8), days=WEEKDAYS)

MASKS = [
    (DAILY_WEEKDAYS, berlin(2025, 1, 6, 9), "alice"),
    (DAILY_WEEKDAYS, berlin(2025, 1, 7, 9), "bob"),
    (DAILY_WEEKDAYS, berlin(2025, 1, 8, 9), "carol"),
    (DAILY_WEEKDAYS, berlin(2025, 1, 9, 9), "alice"),
    (DAILY_WEEKDAYS, berlin(2025, 1, 10, 9), "bob"),
    (DAILY_WEEKDAYS, berlin(2025, 1, 11, 8, 59), "bob"),  # Friday's shift runs to Saturday's handoff
    (DAILY_WEEKDAYS, berlin(2025, 1, 11, 9), None),  # Saturday's shift is not a turn
    (DAILY_WEEKDAYS, berlin(2025, 1, 13, 8, 59), None),
    (DAILY_WEEKDAYS, berlin(2025, 1, 13, 9), "carol"),  # Monday: the turn after Friday's, nobody skipped
    (DAILY_WEEKDAYS, berlin(2025, 1, 20, 9), "bob"),  # turn 10
    (FROM_SATURDAY, berlin(2025, 1, 4, 12), None),  # started, but on an inactive day
    (FROM_SATURDAY, berlin(2025, 1, 6, 9), "alice"),  # the first turn is the first active day's
    (HOURLY_WEEKDAYS, berlin(2025, 1, 6, 9, 59), None),
    (HOURLY_WEEKDAYS, berlin(2025, 1, 7, 0, 0), "carol"),  # Monday had 14 turns from 10:00
    (HOURLY_WEEKDAYS, berlin(2025, 1, 10, 23, 30), "bob"),  # turn 14 + 4 * 24 - 1 = 109
    (HOURLY_WEEKDAYS, berlin(2025, 1, 11, 0, 30), None),  # Saturday's hours are not turns
    (HOURLY_WEEKDAYS, berlin(2025, 1, 13, 0, 0), "carol"),  # turn 110
    (DAY_NIGHT, berlin(2025, 1, 10, 21), "bob"),  # Friday night, turn 9
    (DAY_NIGHT, berlin(2025, 1, 11, 8, 59), "bob"),
    (DAY_NIGHT, berlin(2025, 1, 11, 9), None),
    (DAY_NIGHT, berlin(2025, 1, 13, 9), "alice"),  # turn 10
    (WEEKLY_WEEKDAYS, berlin(2025, 1, 10, 23, 59), "alice"),  # a long shift: the mask covers whole days
    (WEEKLY_WEEKDAYS, berlin(2025, 1, 11, 0, 0), None),
    (WEEKLY_WEEKDAYS, berlin(2025, 1, 12, 23, 59), None),
    (WEEKLY_WEEKDAYS, berlin(2025, 1, 13, 0, 0), "alice"),  # alice's week goes on to Monday's handoff
    (WEEKLY_WEEKDAYS, berlin(2025, 1, 13, 9, 0), "bob"),
    (SUN_WED_THU_SAT_WEEKDAYS, berlin(2025, 1, 5, 12), None),  # Sunday
    (SUN_WED_THU_SAT_WEEKDAYS, berlin(2025, 1, 6, 0), "alice"),
    (SUN_WED_THU_SAT_WEEKDAYS, berlin(2025, 1, 10, 12), "bob"),
    (SUN_WED_THU_SAT_WEEKDAYS, berlin(2025, 1, 13, 12), "carol"),  # turns go on under the masked days
]


@pytest.mark.parametrize(("rotation", "instant", "person"), MASKS)
def test_an_active_day_mask_counts_turns_on_active_days_or_masks_long_shifts(
    rotation: Rotation, instant: datetime, person: str | None
) -> None:
    assert who(schedule_of(rotation), instant) == person


def test_a_weekday_only_daily_rotation_gives_everyone_their_turn() -> None:
    listed = shifts(schedule_of(DAILY_WEEKDAYS), berlin(2025, 1, 6, 9), berlin(2025, 1, 20, 9))
    assert [(s.person, s.start.astimezone(ZONES[0]).strftime("%a")) for s in listed] == [
        ("alice", "Mon"), ("bob", "Tue"), ("carol", "Wed"), ("alice", "Thu"), ("bob", "Fri"),
        ("carol", "Mon"), ("alice", "Tue"), ("bob", "Wed"), ("carol", "Thu"), ("alice", "Fri"),
    ]  # fmt: skip
    assert all(s.end - s.start == timedelta(days=1) for s in listed)


NIGHTS_OFF = Rotation(ABC, DAILY, MON, off=(OffSlot(begin=time(18), end=time(9)),))
WEEKENDS_OFF = Rotation(ABC[:2], WEEKLY, MON, off=(OffSlot(WEEKEND),))
FRIDAY_EVENING_OFF = Rotation(ABC[:2], WEEKLY, MON, off=(OffSlot(frozenset({4}), time(18), time(9)),))
WEDNESDAY_OFF = Rotation(ABC, DAILY, MON, off=(OffSlot(frozenset({2}), time(9), time(9)),))

OFF_SLOTS = [
    (NIGHTS_OFF, berlin(2025, 1, 6, 17, 59), "alice"),
    (NIGHTS_OFF, berlin(2025, 1, 6, 18, 0), None),
    (NIGHTS_OFF, berlin(2025, 1, 7, 0, 0), None),  # past midnight
    (NIGHTS_OFF, berlin(2025, 1, 7, 8, 59), None),
    (NIGHTS_OFF, berlin(2025, 1, 7, 9, 0), "bob"),
    (WEEKENDS_OFF, berlin(2025, 1, 10, 23, 59), "alice"),
    (WEEKENDS_OFF, berlin(2025, 1, 11, 0, 0), None),
    (WEEKENDS_OFF, berlin(2025, 1, 13, 0, 0), "alice"),
    (WEEKENDS_OFF, berlin(2025, 1, 13, 9, 0), "bob"),
    (FRIDAY_EVENING_OFF, berlin(2025, 1, 10, 17, 59), "alice"),
    (FRIDAY_EVENING_OFF, berlin(2025, 1, 10, 18, 0), None),
    (FRIDAY_EVENING_OFF, berlin(2025, 1, 11, 9, 0), "alice"),  # Saturday morning: only Friday's window
    (FRIDAY_EVENING_OFF, berlin(2025, 1, 11, 18, 0), "alice"),
    (WEDNESDAY_OFF, berlin(2025, 1, 8, 12), None),  # carol's turn is off …
    (WEDNESDAY_OFF, berlin(2025, 1, 9, 9), "alice"),  # … and not moved: Thursday is still alice's
]


@pytest.mark.parametrize(("rotation", "instant", "person"), OFF_SLOTS)
def test_an_off_slot_covers_nobody_without_moving_the_turns(
    rotation: Rotation, instant: datetime, person: str | None
) -> None:
    assert who(schedule_of(rotation), instant) == person


def test_an_off_rotation_leaves_its_time_to_the_layer_below() -> None:
    schedule = schedule_of(Rotation(("zoe",), WEEKLY, MON), NIGHTS_OFF)
    listed = shifts(schedule, berlin(2025, 1, 6, 9), berlin(2025, 1, 7, 12))
    assert [(s.person, s.start, s.end) for s in listed] == [
        ("alice", berlin(2025, 1, 6, 9).astimezone(UTC), berlin(2025, 1, 6, 18).astimezone(UTC)),
        ("zoe", berlin(2025, 1, 6, 18).astimezone(UTC), berlin(2025, 1, 7, 9).astimezone(UTC)),
        ("bob", berlin(2025, 1, 7, 9).astimezone(UTC), berlin(2025, 1, 7, 12).astimezone(UTC)),
    ]


def _gaps(slot: OffSlot, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The spans in [start, end) a daily rotation with only ``slot`` off leaves uncovered, in UTC."""
    listed = shifts(schedule_of(Rotation(("alice",), DAILY, datetime(2024, 1, 1, 12), off=(slot,))), start, end)
    return [(a.end, b.start) for a, b in pairwise(listed)]


def _utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


SPRING, FALL = date(2024, 3, 31), date(2024, 10, 27)  # 02:00 CET -> 03:00 CEST; 03:00 CEST -> 02:00 CET
EVE = timedelta(days=1)


@pytest.mark.parametrize(
    ("begin", "end", "day", "gap"),
    [
        ((1, 0), (3, 0), SPRING, (_utc(SPRING, 0), _utc(SPRING, 1))),  # 01:00 to 03:00 is one hour long
        ((22, 0), (2, 30), SPRING - EVE, (_utc(SPRING - EVE, 21), _utc(SPRING, 1))),  # a skipped end: the transition
        ((2, 30), (6, 0), SPRING, (_utc(SPRING, 1), _utc(SPRING, 4))),  # a skipped beginning likewise
        ((1, 0), (3, 0), FALL, (_utc(FALL - EVE, 23), _utc(FALL, 2))),  # 01:00 to 03:00 is three hours long
        ((2, 30), (6, 0), FALL, (_utc(FALL, 0, 30), _utc(FALL, 5))),  # a repeated time: its first occurrence
        ((22, 0), (2, 30), FALL - EVE, (_utc(FALL - EVE, 20), _utc(FALL, 0, 30))),
    ],
)
def test_off_slots_are_wall_clock_windows_across_dst(
    begin: tuple[int, int], end: tuple[int, int], day: date, gap: tuple[datetime, datetime]
) -> None:
    start = berlin(day.year, day.month, day.day, 12) - timedelta(days=1)
    assert gap in _gaps(OffSlot(begin=time(*begin), end=time(*end)), start, start + timedelta(days=2))


def _joins(name: str, at: datetime) -> Change:
    return Change(name, at, joins=True)


def _leaves(name: str, at: datetime) -> Change:
    return Change(name, at, joins=False)


def _week(rotation: Rotation) -> str:
    """Who the rotation has at 12:00 on each of the eight days from Monday 6 January 2025, by initial."""
    people = [who(schedule_of(rotation), berlin(2025, 1, 6 + d, 12)) for d in range(8)]
    return "".join(p[0] if p else "-" for p in people)


JAN = {day: datetime(2025, 1, day, 9) for day in range(1, 15)}  # the day's handoff


@pytest.mark.parametrize(
    ("changes", "days", "week"),
    [
        # bob joins on Wednesday at noon: from Thursday's handoff, after alice (on duty) comes bob
        ((_joins("bob", JAN[8] + timedelta(hours=3)),), EVERY_DAY, "acabcabc"),
        # carol leaves at Saturday's handoff (it would have been hers): after bob comes alice
        ((_leaves("carol", JAN[11]),), EVERY_DAY, "abcababa"),
        # carol leaves during her shift: she keeps it to the next handoff, then alice
        ((_leaves("carol", JAN[8] + timedelta(hours=3)),), EVERY_DAY, "abcababa"),
        # bob is away from Tuesday to Friday: his turns are not owed, the others go on in order
        ((_leaves("bob", JAN[7]), _joins("bob", JAN[10])), EVERY_DAY, "acacabca"),
        # a join before the start is a member from the start
        ((_joins("bob", JAN[1]),), EVERY_DAY, "abcabcab"),
        # everyone leaves: nobody
        (tuple(_leaves(name, JAN[8]) for name in ABC), EVERY_DAY, "ab------"),
        # on weekdays only, a join on Saturday takes effect at Monday's handoff
        ((_joins("bob", JAN[11] + timedelta(hours=3)),), WEEKDAYS, "acaca--b"),
    ],
)
def test_joins_and_leaves_start_a_new_epoch_at_the_next_handoff(
    changes: tuple[Change, ...], days: frozenset[int], week: str
) -> None:
    assert _week(Rotation(ABC, DAILY, MON, days=days, changes=changes)) == week


def test_a_combination_of_mask_off_slot_and_join() -> None:
    rotation = Rotation(
        ABC, DAILY, MON, days=WEEKDAYS, off=(OffSlot(begin=time(20), end=time(7)),),
        changes=(_joins("carol", datetime(2025, 1, 7, 12)),),
    )  # fmt: skip
    listed = shifts(schedule_of(rotation), berlin(2025, 1, 6, 9), berlin(2025, 1, 13, 21))
    local = [(s.person, _local(s.start), _local(s.end)) for s in listed]
    assert local == [
        ("alice", "Mon 09:00", "Mon 20:00"), ("alice", "Tue 07:00", "Tue 09:00"),  # Monday's turn ends at 09:00
        ("bob", "Tue 09:00", "Tue 20:00"), ("bob", "Wed 07:00", "Wed 09:00"),
        ("carol", "Wed 09:00", "Wed 20:00"), ("carol", "Thu 07:00", "Thu 09:00"),  # joined: after bob, carol
        ("alice", "Thu 09:00", "Thu 20:00"), ("alice", "Fri 07:00", "Fri 09:00"),
        ("bob", "Fri 09:00", "Fri 20:00"), ("bob", "Sat 07:00", "Sat 09:00"),  # Friday's turn, then the weekend
        ("carol", "Mon 09:00", "Mon 20:00"),
    ]  # fmt: skip


def _local(at: datetime) -> str:
    return at.astimezone(ZONES[0]).strftime("%a %H:%M")


@pytest.mark.parametrize(
    "build",
    [
        lambda: OffSlot(frozenset()),
        lambda: OffSlot(frozenset({7})),
        lambda: OffSlot(begin=time(9, tzinfo=UTC)),
        lambda: Rotation(ABC, DAILY, MON, days=frozenset()),
        lambda: Rotation(ABC, DAILY, MON, days=frozenset({-1})),
        lambda: Rotation(ABC, DAILY, MON, changes=(_joins("zoe", MON),)),
        lambda: Rotation(ABC, DAILY, MON, changes=(_joins("bob", MON.replace(tzinfo=UTC)),)),
    ],
)
def test_malformed_shapes_are_refused(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_who_on_a_masked_hourly_rotation_does_not_walk_from_the_start() -> None:
    """Turn numbers far from the start come from arithmetic: a year of hours agrees with one by one."""
    rotation = Rotation(ABC, HOURLY, datetime(2020, 1, 1, 0), days=WEEKDAYS)
    at = berlin(2034, 12, 29, 15)  # a Friday
    weekdays = sum(
        1 for d in range((at.date() - date(2020, 1, 1)).days) if (date(2020, 1, 1) + timedelta(d)).weekday() < 5
    )
    assert who(schedule_of(rotation), at) == ABC[(weekdays * 24 + 15) % 3]


# Properties -------------------------------------------------------------------------------------

_NAMES = ["alice", "bob", "carol", "dave", "erin"]
_names = st.lists(st.sampled_from(_NAMES), min_size=2, max_size=5, unique=True).map(tuple)
_days = st.frozensets(st.integers(0, 6), min_size=1)
_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 30]))
_slots = st.builds(OffSlot, _days, _times, _times)
_within_a_day = st.sampled_from(
    [(timedelta(hours=h),) for h in (2, 3, 4, 6, 8, 12, 24)]
    + [(timedelta(hours=a), timedelta(hours=24 - a)) for a in (6, 12, 16)]
    + [(timedelta(hours=2), timedelta(hours=4), timedelta(hours=6))]
)
_longer = st.lists(st.sampled_from([timedelta(hours=h) for h in (5, 36)] + [timedelta(days=d) for d in range(2, 8)]),
                   min_size=1, max_size=3).map(tuple)  # fmt: skip
_starts = st.builds(
    datetime, st.just(2019), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.sampled_from([0, 30])
)
_noons = st.builds(datetime, st.integers(2019, 2035), st.integers(1, 12), st.integers(1, 28), st.just(12))


@st.composite
def _changes(draw: st.DrawFn, names: tuple[str, ...]) -> tuple[Change, ...]:
    """Joins and leaves at local noons (never near a DST change) of everyone but the first participant."""
    found = []
    for name in names[1:]:
        found += [Change(name, draw(_noons), draw(st.booleans())) for _ in range(draw(st.integers(0, 2)))]
    return tuple(found)


@st.composite
def _rotations(draw: st.DrawFn, *, off: bool = True, changes: bool = True) -> Rotation:
    """A rotation of any shape: a pattern within a day or longer, a mask, off slots, joins and leaves."""
    names = draw(_names)
    pattern = draw(st.one_of(_within_a_day, _longer))
    return Rotation(
        names,
        pattern,
        draw(_starts),
        days=draw(st.one_of(st.just(EVERY_DAY), _days)),
        off=tuple(draw(st.lists(_slots, max_size=2))) if off else (),
        changes=draw(_changes(names)) if changes else (),
    )


def _window(instant: datetime) -> tuple[datetime, datetime]:
    return instant - timedelta(days=9), instant + timedelta(days=9)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), zone=st.sampled_from(ZONES), lower=_rotations(), upper=_rotations())
def test_who_agrees_with_shifts_and_nothing_is_covered_twice(
    data: st.DataObject, zone: ZoneInfo, lower: Rotation, upper: Rotation
) -> None:
    schedule = schedule_of(lower, upper, zone=zone)
    instant = data.draw(instants(zone))
    start, end = _window(instant)
    listed = shifts(schedule, start, end)
    assert_disjoint(listed, start, end)
    ends = [s.end - timedelta(microseconds=1) for s in listed]
    for probe in [instant, start, *(s.start for s in listed), *ends, *(s.end for s in listed[:-1])]:
        assert who(schedule, probe) == holder(listed, probe)


def _latest_handoff(rotation: Rotation, local: datetime) -> datetime:
    """The local start of the shift holding ``local`` in a pattern repeating within a day (by its times of day)."""
    offsets, at = [], timedelta(0)
    for length in rotation.pattern * (timedelta(days=1) // rotation.cycle):
        offsets.append((datetime.combine(date.min, rotation.handoff) + at).time())
        at += length
    days = (local.date() - timedelta(days=d) for d in (0, 1))
    return max(b for day in days for t in offsets if (b := datetime.combine(day, t)) <= local)


def _uncovered(rotation: Rotation, local: datetime) -> bool:
    """Whether a rotation whose members never run out leaves local wall-clock time ``local`` to nobody."""
    if local < rotation.start:
        return True
    if counts_days(rotation.pattern) and _latest_handoff(rotation, local).weekday() not in rotation.days:
        return True
    if not counts_days(rotation.pattern) and local.weekday() not in rotation.days:
        return True
    for slot in rotation.off:
        for day in (local.date() - timedelta(days=1), local.date()):
            ends = day + timedelta(days=1) if slot.end <= slot.begin else day
            if day.weekday() in slot.days and datetime.combine(day, slot.begin) <= local < datetime.combine(
                ends, slot.end
            ):
                return True
    return False


def _ambiguous(instant: datetime, zone: ZoneInfo) -> bool:
    """Whether the local time of ``instant`` happens twice (a fall-back hour), where wall-clock order fails."""
    local = instant.astimezone(zone).replace(tzinfo=None)
    return local.replace(tzinfo=zone, fold=0).utcoffset() != local.replace(tzinfo=zone, fold=1).utcoffset()


@settings(max_examples=200, deadline=None)
@given(data=st.data(), zone=st.sampled_from(ZONES), rotation=_rotations())
def test_a_rotation_leaves_uncovered_exactly_its_off_time(
    data: st.DataObject, zone: ZoneInfo, rotation: Rotation
) -> None:
    """No gap within active covered time, and no coverage in off time (wall-clock arithmetic as the oracle)."""
    instant = data.draw(instants(zone))
    start, end = _window(instant)
    listed = shifts(schedule_of(rotation, zone=zone), start, end)
    edges = [m for s in listed for m in (s.start, s.end)]
    probes = [instant, start, *edges, *(m - timedelta(microseconds=1) for m in edges)]
    probes += [start + (end - start) * data.draw(st.floats(0, 0.999)) for _ in range(20)]
    for probe in (p for p in probes if start <= p < end and not _ambiguous(p, zone)):
        assert (holder(listed, probe) is None) == _uncovered(rotation, probe.astimezone(zone).replace(tzinfo=None))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), zone=st.sampled_from(ZONES), rotation=_rotations(off=False, changes=False))
def test_a_mask_skips_no_one(data: st.DataObject, zone: ZoneInfo, rotation: Rotation) -> None:
    """Within a day's pattern every turn is the next participant's; longer shifts keep their turns under masks."""
    instant = data.draw(instants(zone))
    start, end = _window(instant)
    listed = shifts(schedule_of(rotation, zone=zone), start, end)
    order = rotation.participants
    if counts_days(rotation.pattern):
        for a, b in pairwise(listed):
            assert order.index(b.person) == (order.index(a.person) + 1) % len(order)
    else:
        unmasked = schedule_of(Rotation(order, rotation.pattern, rotation.start), zone=zone)
        assert all(who(unmasked, s.start) == s.person for s in listed)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), zone=st.sampled_from(ZONES), rotation=_rotations(changes=False))
def test_off_slots_never_move_a_turn(data: st.DataObject, zone: ZoneInfo, rotation: Rotation) -> None:
    instant = data.draw(instants(zone))
    unslotted = Rotation(rotation.participants, rotation.pattern, rotation.start, days=rotation.days)
    listed = shifts(schedule_of(rotation, zone=zone), *_window(instant))
    assert all(who(schedule_of(unslotted, zone=zone), s.start) == s.person for s in listed)
    assert all(who(schedule_of(unslotted, zone=zone), s.end - timedelta(microseconds=1)) == s.person for s in listed)


def _members(rotation: Rotation, local: datetime) -> list[str]:
    """Who is in the rotation for a turn beginning at local time ``local`` (its changes at or before it)."""
    found = []
    for name in rotation.participants:
        mine = sorted((c for c in rotation.changes if c.person == name), key=lambda c: c.at)
        here = not (mine and mine[0].joins)
        for change in (c for c in mine if c.at <= local):
            here = change.joins
        if here:
            found.append(name)
    return found


def _next_member(order: tuple[str, ...], members: list[str], person: str) -> str:
    """The first of ``members`` listed after ``person`` in ``order``, cyclically."""
    after = [m for m in members if order.index(m) > order.index(person)]
    return (after or members)[0]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), zone=st.sampled_from(ZONES), rotation=_rotations(off=False))
def test_joins_and_leaves_continue_with_the_member_after_the_one_on_duty(
    data: st.DataObject, zone: ZoneInfo, rotation: Rotation
) -> None:
    """Each turn is the next member's, counted among the members at its handoff; nobody is outside theirs."""
    assume(counts_days(rotation.pattern) or rotation.days == EVERY_DAY)  # masked long shifts merge turns
    instant = data.draw(st.sampled_from([c.at for c in rotation.changes] or [datetime(2027, 1, 1)]))
    start, end = _window(instant.replace(tzinfo=zone))
    listed = shifts(schedule_of(rotation, zone=zone), start, end)
    for shift in listed[1:]:
        assert shift.person in _members(rotation, shift.start.astimezone(zone).replace(tzinfo=None))
    for a, b in pairwise(listed):
        local = b.start.astimezone(zone).replace(tzinfo=None)  # changes are at noon: no DST nearby
        assert b.person == _next_member(rotation.participants, _members(rotation, local), a.person)
