"""Schedule evaluation: a table per rotation shape, layers, overrides, the DST handoffs, and properties.

The properties run over instants from 2020 to 2035 and around every DST transition of three zones in
that range: shifts meet exactly (no gap, no overlap), everyone in a rotation has a turn in every cycle,
``who`` agrees with ``shifts``, and daily handoffs happen at their local time (or, when the clock skips
it, at the transition).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.oncall.schedules import (
    DAILY,
    HOURLY,
    WEEKLY,
    Layer,
    Override,
    Rotation,
    Schedule,
    Shift,
    instant_of,
    shifts,
    who,
)
from tests.oncall_support import (
    ABC,
    BERLIN,
    ZONES,
    assert_contiguous,
    holder,
    instants,
    transitions,
)
from tests.oncall_support import berlin as _at
from tests.oncall_support import schedule_of as _schedule

HOURLY_ABC = Rotation(ABC, HOURLY, datetime(2025, 1, 6, 0, 0))
DAILY_ABC = Rotation(ABC, DAILY, datetime(2025, 1, 6, 9, 0))
WEEKLY_AB = Rotation(ABC[:2], WEEKLY, datetime(2025, 1, 6, 10, 0))
SUN_WED_THU_SAT = Rotation(ABC, (timedelta(days=4), timedelta(days=3)), datetime(2025, 1, 5, 8, 0))

SHAPES = [
    (HOURLY_ABC, _at(2025, 1, 5, 23, 59), None),
    (HOURLY_ABC, _at(2025, 1, 6, 0, 0), "alice"),
    (HOURLY_ABC, _at(2025, 1, 6, 1, 0), "bob"),
    (HOURLY_ABC, _at(2025, 1, 6, 2, 59), "carol"),
    (HOURLY_ABC, _at(2025, 1, 6, 3, 0), "alice"),
    (HOURLY_ABC, _at(2025, 1, 7, 0, 30), "alice"),  # 24 hours later: 24 % 3 == 0
    (DAILY_ABC, _at(2025, 1, 6, 8, 59), None),
    (DAILY_ABC, _at(2025, 1, 6, 9, 0), "alice"),
    (DAILY_ABC, _at(2025, 1, 7, 8, 59), "alice"),
    (DAILY_ABC, _at(2025, 1, 7, 9, 0), "bob"),
    (DAILY_ABC, _at(2025, 1, 8, 23, 0), "carol"),
    (DAILY_ABC, _at(2025, 1, 9, 9, 0), "alice"),
    (WEEKLY_AB, _at(2025, 1, 13, 9, 59), "alice"),
    (WEEKLY_AB, _at(2025, 1, 13, 10, 0), "bob"),
    (WEEKLY_AB, _at(2025, 1, 20, 10, 0), "alice"),
    (SUN_WED_THU_SAT, _at(2025, 1, 5, 8, 0), "alice"),  # Sunday
    (SUN_WED_THU_SAT, _at(2025, 1, 9, 7, 59), "alice"),  # Thursday morning, before the handoff
    (SUN_WED_THU_SAT, _at(2025, 1, 9, 8, 0), "bob"),  # Thu–Sat
    (SUN_WED_THU_SAT, _at(2025, 1, 12, 8, 0), "carol"),  # the next Sunday
    (SUN_WED_THU_SAT, _at(2025, 1, 16, 8, 0), "alice"),  # Thursday: alice now has the short shift
    (SUN_WED_THU_SAT, _at(2025, 1, 19, 8, 0), "bob"),
]


@pytest.mark.parametrize(("rotation", "instant", "person"), SHAPES)
def test_each_rotation_shape_hands_off_at_its_local_time(
    rotation: Rotation, instant: datetime, person: str | None
) -> None:
    assert who(_schedule(rotation), instant) == person


def test_the_custom_pattern_lists_its_shifts_with_their_lengths() -> None:
    listed = shifts(_schedule(SUN_WED_THU_SAT), _at(2025, 1, 5, 8), _at(2025, 1, 19, 8))
    assert [(s.person, (s.end - s.start).days) for s in listed] == [
        ("alice", 4),
        ("bob", 3),
        ("carol", 4),
        ("alice", 3),
    ]


def test_a_higher_layer_wins_where_it_has_someone() -> None:
    base = Rotation(("alice", "bob"), DAILY, datetime(2025, 1, 6, 9, 0))
    upper = Rotation(("zoe",), WEEKLY, datetime(2025, 1, 8, 12, 0))
    schedule = _schedule(base, upper)
    assert who(schedule, _at(2025, 1, 8, 11, 59)) == "alice"
    assert who(schedule, _at(2025, 1, 8, 12, 0)) == "zoe"
    assert shifts(schedule, _at(2025, 1, 7, 0), _at(2025, 1, 9, 0)) == [
        Shift("alice", _at(2025, 1, 7, 0).astimezone(UTC), _at(2025, 1, 7, 9).astimezone(UTC)),
        Shift("bob", _at(2025, 1, 7, 9).astimezone(UTC), _at(2025, 1, 8, 9).astimezone(UTC)),
        Shift("alice", _at(2025, 1, 8, 9).astimezone(UTC), _at(2025, 1, 8, 12).astimezone(UTC)),
        Shift("zoe", _at(2025, 1, 8, 12).astimezone(UTC), _at(2025, 1, 9, 0).astimezone(UTC)),
    ]


def test_a_later_rotation_in_a_layer_takes_over_from_its_start() -> None:
    old = Rotation(("alice", "bob"), DAILY, datetime(2025, 1, 6, 9, 0))
    new = Rotation(("carol", "dave"), DAILY, datetime(2025, 1, 10, 9, 0))
    schedule = Schedule("primary", BERLIN, (Layer((new, old)),))
    assert who(schedule, _at(2025, 1, 10, 8, 59)) == "bob"
    assert who(schedule, _at(2025, 1, 10, 9, 0)) == "carol"
    assert who(schedule, _at(2025, 1, 11, 9, 0)) == "dave"


def test_an_override_takes_its_window_and_a_later_override_wins() -> None:
    first = Override("xavier", _at(2025, 1, 6, 12), _at(2025, 1, 6, 18))
    second = Override("yara", _at(2025, 1, 6, 16), _at(2025, 1, 6, 20))
    schedule = _schedule(DAILY_ABC, overrides=(first, second))
    assert [(s.person, s.start, s.end) for s in shifts(schedule, _at(2025, 1, 6, 9), _at(2025, 1, 7, 9))] == [
        ("alice", _at(2025, 1, 6, 9).astimezone(UTC), _at(2025, 1, 6, 12).astimezone(UTC)),
        ("xavier", _at(2025, 1, 6, 12).astimezone(UTC), _at(2025, 1, 6, 16).astimezone(UTC)),
        ("yara", _at(2025, 1, 6, 16).astimezone(UTC), _at(2025, 1, 6, 20).astimezone(UTC)),
        ("alice", _at(2025, 1, 6, 20).astimezone(UTC), _at(2025, 1, 7, 9).astimezone(UTC)),
    ]
    assert who(schedule, _at(2025, 1, 6, 20)) == "alice"


def test_an_override_covers_a_time_nobody_else_does() -> None:
    cover = Override("xavier", _at(2025, 1, 1, 0), _at(2025, 1, 2, 0))
    assert who(_schedule(DAILY_ABC, overrides=(cover,)), _at(2025, 1, 1, 12)) == "xavier"
    assert who(_schedule(DAILY_ABC, overrides=(cover,)), _at(2025, 1, 2, 0)) is None


def test_a_daily_handoff_skipped_by_spring_forward_happens_at_the_first_valid_instant_after() -> None:
    schedule = _schedule(Rotation(ABC, DAILY, datetime(2024, 3, 1, 2, 30)))
    listed = shifts(schedule, _at(2024, 3, 30, 12), _at(2024, 4, 1, 12))
    starts = [s.start for s in listed[1:]]
    assert starts == [datetime(2024, 3, 31, 1, 0, tzinfo=UTC), datetime(2024, 4, 1, 0, 30, tzinfo=UTC)]
    assert starts[0].astimezone(BERLIN).time() == time(3, 0)  # 03:00 CEST, the clock jumped from 02:00
    assert listed[0].end == starts[0]
    assert who(schedule, datetime(2024, 3, 31, 0, 59, 59, tzinfo=UTC)) == listed[0].person
    assert who(schedule, datetime(2024, 3, 31, 1, 0, tzinfo=UTC)) == listed[1].person


def test_a_daily_handoff_repeated_by_fall_back_happens_at_its_first_occurrence() -> None:
    schedule = _schedule(Rotation(ABC, DAILY, datetime(2024, 10, 1, 2, 30)))
    handoff = _at(2024, 10, 27, 2, 30, fold=0)  # 02:30 CEST == 00:30 UTC; 02:30 CET is an hour later
    assert handoff.astimezone(UTC) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    listed = shifts(schedule, _at(2024, 10, 26, 12), _at(2024, 10, 28, 12))
    assert [s.start for s in listed[1:]] == [handoff.astimezone(UTC), _at(2024, 10, 28, 2, 30).astimezone(UTC)]
    assert listed[1].end - listed[1].start == timedelta(hours=25)
    second_pass = _at(2024, 10, 27, 2, 15, fold=1)  # reads as before 02:30, but is after the handoff
    assert who(schedule, second_pass) == listed[1].person != listed[0].person


def test_an_hourly_shift_inside_the_skipped_hour_is_empty_and_nobody_else_loses_time() -> None:
    schedule = _schedule(Rotation(ABC, HOURLY, datetime(2024, 3, 1, 0, 0)))
    listed = shifts(schedule, _at(2024, 3, 31, 1), _at(2024, 3, 31, 4))
    # 01:00 is shift 721 (bob); 02:00 (carol) does not exist that day; 03:00 is shift 723 (alice)
    assert [(s.person, s.end - s.start) for s in listed] == [("bob", timedelta(hours=1)), ("alice", timedelta(hours=1))]


@pytest.mark.parametrize(
    ("local", "instant"),
    [
        (datetime(2024, 3, 31, 2, 30), datetime(2024, 3, 31, 1, 0, tzinfo=UTC)),
        (datetime(2024, 3, 31, 1, 59), datetime(2024, 3, 31, 0, 59, tzinfo=UTC)),
        (datetime(2024, 10, 27, 2, 30), datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),
        (datetime(2024, 10, 27, 3, 0), datetime(2024, 10, 27, 2, 0, tzinfo=UTC)),
    ],
)
def test_a_local_handoff_time_becomes_its_first_valid_instant(local: datetime, instant: datetime) -> None:
    assert instant_of(local, BERLIN) == instant


@pytest.mark.parametrize(
    "build",
    [
        lambda: Rotation((), DAILY, datetime(2025, 1, 1)),
        lambda: Rotation(ABC, (), datetime(2025, 1, 1)),
        lambda: Rotation(ABC, (timedelta(0),), datetime(2025, 1, 1)),
        lambda: Rotation(ABC, DAILY, datetime(2025, 1, 1, tzinfo=UTC)),
        lambda: Override("x", datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
        lambda: Override("x", datetime(2025, 1, 1), datetime(2025, 1, 2)),
    ],
)
def test_malformed_values_are_refused(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_who_refuses_a_naive_instant() -> None:
    with pytest.raises(ValueError):
        who(_schedule(DAILY_ABC), datetime(2025, 1, 7))


# Properties -------------------------------------------------------------------------------------


def test_the_zones_have_two_transitions_a_year() -> None:
    assert [len(transitions(zone)) for zone in ZONES] == [30, 30, 30]


_zones = st.sampled_from(ZONES)
_hours = [timedelta(hours=h) for h in (2, 3, 4, 6, 8, 12, 24, 36)]
_lengths = st.sampled_from(_hours + [timedelta(days=d) for d in range(1, 8)])
_names = st.lists(st.sampled_from(["alice", "bob", "carol", "dave", "erin"]), min_size=1, max_size=5, unique=True)
_starts = st.builds(
    datetime,
    st.just(2019),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.sampled_from([0, 15, 30, 45]),
)
_rotations = st.builds(Rotation, _names.map(tuple), st.lists(_lengths, min_size=1, max_size=3).map(tuple), _starts)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), zone=_zones, rotation=_rotations)
def test_one_rotation_shifts_meet_and_give_everyone_a_turn_every_cycle(
    data: st.DataObject, zone: ZoneInfo, rotation: Rotation
) -> None:
    instant = data.draw(instants(zone))
    reach = len(rotation.participants) * max(rotation.pattern) * 2
    start, end = instant - reach, instant + reach
    listed = shifts(_schedule(rotation, zone=zone), start, end)
    if len(rotation.participants) == 1:
        assert listed == [Shift(rotation.participants[0], start, end)]
        return
    assert_contiguous(listed, start, end)
    count = len(rotation.participants)
    for at in range(len(listed) - count + 1):
        assert {s.person for s in listed[at : at + count]} == set(rotation.participants)
    assert who(_schedule(rotation, zone=zone), instant) == holder(listed, instant)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(), zone=_zones, lower=_rotations, upper=_rotations, hours=st.lists(st.integers(-48, 48), max_size=4)
)
def test_who_agrees_with_shifts_under_layers_and_overrides(
    data: st.DataObject, zone: ZoneInfo, lower: Rotation, upper: Rotation, hours: list[int]
) -> None:
    instant = data.draw(instants(zone))
    late_upper = Rotation(upper.participants, upper.pattern, upper.start.replace(year=2036))
    marks = sorted(instant + timedelta(hours=h, minutes=7) for h in hours)
    overrides = tuple(Override("oscar", a, b) for a, b in zip(marks[::2], marks[1::2], strict=False) if a < b)
    schedule = _schedule(lower, late_upper if data.draw(st.booleans()) else upper, zone=zone, overrides=overrides)
    start, end = instant - timedelta(days=3), instant + timedelta(days=3)
    listed = shifts(schedule, start, end)
    assert_contiguous(listed, start, end)
    ends = [s.end - timedelta(microseconds=1) for s in listed]
    for probe in [instant, start, *(s.start for s in listed), *ends]:
        assert who(schedule, probe) == holder(listed, probe)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), zone=_zones, handoff=st.times().map(lambda t: t.replace(second=0, microsecond=0)))
def test_daily_handoffs_happen_at_their_local_time_or_at_the_transition_that_skips_it(
    data: st.DataObject, zone: ZoneInfo, handoff: time
) -> None:
    instant = data.draw(instants(zone))
    rotation = Rotation(ABC, DAILY, datetime.combine(datetime(2019, 6, 1), handoff))
    listed = shifts(_schedule(rotation, zone=zone), instant - timedelta(days=3), instant + timedelta(days=3))
    for shift in listed[1:]:
        local = shift.start.astimezone(zone)
        transition = local.utcoffset() != (shift.start - timedelta(seconds=1)).astimezone(zone).utcoffset()
        assert (local.time() == handoff and local.fold == 0) or (transition and local.time() > handoff)
    for shift in listed[1:-1]:
        assert timedelta(hours=23) <= shift.end - shift.start <= timedelta(hours=25)
