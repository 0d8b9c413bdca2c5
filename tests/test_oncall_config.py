"""On-call settings: people, schedules, the key paths in their errors, and the schedules they build."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from receiver import config
from receiver.engine.process import settings_frame
from receiver.oncall.schedules import DAILY, Layer, OffSlot, Override, Rotation, Schedule, who
from receiver.oncall.turns import Change

PEOPLE = {
    "alice": {"timezone": "Europe/Berlin", "slack_user": "U0ALICE", "email": "alice@example.com"},
    "bob": {"timezone": "America/New_York", "pagerduty_user": "PBOB"},
    "carol": {"timezone": "UTC"},
}
PRIMARY = {
    "timezone": "Europe/Berlin",
    "layers": [
        {"rotations": [{"participants": ["alice", "bob"], "shift": "daily", "start": "2026-12-07T09:00"}]},
        {"rotations": [{"participants": ["carol"], "shift": ["4d", "3d"], "start": "2026-12-13T08:00"}]},
    ],
    "overrides": [{"person": "bob", "start": "2026-12-24T18:00:00+01:00", "end": "2026-12-25T09:00:00Z"}],
}


def load(tmp_path: Path, oncall: object) -> config.Settings:
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump({"oncall": oncall}))
    return config.load(path, {})


def problems(tmp_path: Path, oncall: object) -> dict[str, str]:
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, oncall)
    return dict(caught.value.problems)


def test_no_oncall_section_means_no_people_and_no_schedules() -> None:
    settings = config.load(None, {})
    assert settings.oncall.people == {} and settings.oncall.schedule_values() == {}


def test_schedules_build_the_values_the_evaluation_takes(tmp_path: Path) -> None:
    settings = load(tmp_path, {"people": PEOPLE, "schedules": {"primary": PRIMARY}})
    berlin = ZoneInfo("Europe/Berlin")
    assert settings.oncall.people["alice"].slack_user == "U0ALICE"
    assert settings.oncall.people["bob"].email is None
    assert settings.oncall.schedule_values() == {
        "primary": Schedule(
            "primary",
            berlin,
            (
                Layer((Rotation(("alice", "bob"), DAILY, datetime(2026, 12, 7, 9, 0)),)),
                Layer((Rotation(("carol",), (timedelta(days=4), timedelta(days=3)), datetime(2026, 12, 13, 8, 0)),)),
            ),
            (
                Override(
                    "bob",
                    datetime(2026, 12, 24, 18, 0, tzinfo=berlin),
                    datetime(2026, 12, 25, 9, 0, tzinfo=UTC),
                ),
            ),
        )
    }


def test_the_built_schedule_answers_who(tmp_path: Path) -> None:
    schedule = load(tmp_path, {"people": PEOPLE, "schedules": {"primary": PRIMARY}}).oncall.schedule_values()["primary"]
    assert who(schedule, datetime(2026, 12, 8, 8, 59, tzinfo=UTC)) == "bob"  # 09:59 Berlin, day 2
    assert who(schedule, datetime(2026, 12, 13, 7, 0, tzinfo=UTC)) == "carol"  # the higher layer has begun
    assert who(schedule, datetime(2026, 12, 24, 18, 0, tzinfo=UTC)) == "bob"  # the override


def test_yaml_timestamps_are_taken_as_yaml_parsed_them(tmp_path: Path) -> None:
    path = tmp_path / "receiver.yml"
    path.write_text(
        "oncall:\n"
        "  people: {alice: {timezone: UTC}}\n"
        "  schedules:\n"
        "    primary:\n"
        "      timezone: Europe/Berlin\n"
        "      layers: [{rotations: [{participants: [alice], shift: weekly, start: 2026-12-07 09:00:00}]}]\n"
        "      overrides: [{person: alice, start: 2026-12-24T18:00:00+01:00, end: 2026-12-25T09:00:00Z}]\n"
    )
    schedule = config.load(path, {}).oncall.schedule_values()["primary"]
    assert schedule.layers[0].rotations[0].start == datetime(2026, 12, 7, 9, 0)
    assert schedule.overrides[0].end == datetime(2026, 12, 25, 9, 0, tzinfo=UTC)


def test_settings_survive_the_trip_to_the_engine_process(tmp_path: Path) -> None:
    """The settings dump as JSON and load back equal (the engine will need the schedules for escalation)."""
    settings = load(tmp_path, {"people": PEOPLE, "schedules": {"primary": PRIMARY}})
    dumped = settings.oncall.model_dump(mode="json")
    assert config.OncallSettings.model_validate(dumped) == settings.oncall
    assert settings_frame(settings)  # the oncall section does not break the engine's frame


def _rotation(**changes: object) -> dict[str, object]:
    rotation: dict[str, object] = {"participants": ["alice"], "shift": "daily", "start": "2026-12-07T09:00"}
    return rotation | changes


def _schedule(**changes: object) -> dict[str, object]:
    schedule: dict[str, object] = {"timezone": "Europe/Berlin", "layers": [{"rotations": [_rotation()]}]}
    return schedule | changes


@pytest.mark.parametrize(
    ("oncall", "key", "message"),
    [
        ({"people": {"alice": {"timezone": "Mars/Olympus"}}}, "oncall.people.alice.timezone", "IANA time zone"),
        ({"people": {"alice": {"timezone": "../../etc/passwd"}}}, "oncall.people.alice.timezone", "IANA time zone"),
        ({"people": {"alice": {}}}, "oncall.people.alice.timezone", "missing"),
        ({"people": {"alice": {"timezone": "UTC", "phone": "1"}}}, "oncall.people.alice.phone", "unknown setting"),
        ({"people": {"alice": {"timezone": "UTC", "slack_user": ""}}}, "oncall.people.alice.slack_user", "at least 1"),
        ({"schedules": {"p": _schedule(timezone="Berlin")}}, "oncall.schedules.p.timezone", "IANA time zone"),
        ({"schedules": {"Primary!": _schedule()}}, "oncall.schedules", "schedule name 'Primary!'"),
        ({"schedules": {"p": _schedule(layers=[])}}, "oncall.schedules.p.layers", "at least 1"),
        (
            {"schedules": {"p": _schedule(layers=[{"rotations": []}])}},
            "oncall.schedules.p.layers.0.rotations",
            "at least 1",
        ),
        (
            {"schedules": {"p": _schedule(layers=[{"rotations": [_rotation(participants=[])]}])}},
            "oncall.schedules.p.layers.0.rotations.0.participants",
            "at least 1",
        ),
        (
            {"schedules": {"p": _schedule(layers=[{"rotations": [_rotation(shift="monthly")]}])}},
            "oncall.schedules.p.layers.0.rotations.0.shift",
            "hourly, daily, weekly",
        ),
        (
            {"schedules": {"p": _schedule(layers=[{"rotations": [_rotation(shift=["4d", "soon"])]}])}},
            "oncall.schedules.p.layers.0.rotations.0.shift",
            "'soon' is not a duration",
        ),
        (
            {"schedules": {"p": _schedule(layers=[{"rotations": [_rotation(shift=[])]}])}},
            "oncall.schedules.p.layers.0.rotations.0.shift",
            "list of shift lengths",
        ),
        (
            {"schedules": {"p": _schedule(layers=[{"rotations": [_rotation(start="2026-12-07T09:00+01:00")]}])}},
            "oncall.schedules.p.layers.0.rotations.0.start",
            "give no offset",
        ),
        (
            {"schedules": {"p": _schedule(layers=[{"rotations": [_rotation(start="next monday")]}])}},
            "oncall.schedules.p.layers.0.rotations.0.start",
            "ISO 8601",
        ),
        (
            {
                "schedules": {
                    "p": _schedule(
                        overrides=[{"person": "alice", "start": "2026-12-24T18:00", "end": "2026-12-25T09:00Z"}]
                    )
                }
            },
            "oncall.schedules.p.overrides.0.start",
            "UTC offset",
        ),
        (
            {
                "schedules": {
                    "p": _schedule(
                        overrides=[{"person": "alice", "start": "2026-12-25T09:00Z", "end": "2026-12-25T09:00Z"}]
                    )
                }
            },
            "oncall.schedules.p.overrides.0",
            "before it starts",
        ),
    ],
)
def test_bad_oncall_settings_name_the_key(tmp_path: Path, oncall: dict[str, object], key: str, message: str) -> None:
    found = problems(tmp_path, {"people": {"alice": {"timezone": "UTC"}}} | oncall)
    assert key in found, found
    assert message in found[key]


def test_a_participant_who_is_not_a_person_is_named_with_the_key_path(tmp_path: Path) -> None:
    rotations = [_rotation(), _rotation(participants=["alice", "dave"])]
    found = problems(
        tmp_path,
        {"people": {"alice": {"timezone": "UTC"}}, "schedules": {"p": _schedule(layers=[{"rotations": rotations}])}},
    )
    assert found == {"oncall": "schedules.p.layers.0.rotations.1.participants.1: 'dave' is not in oncall.people"}


def test_an_override_by_someone_who_is_not_a_person_is_named_with_the_key_path(tmp_path: Path) -> None:
    override = {"person": "mallory", "start": "2026-12-24T18:00:00Z", "end": "2026-12-25T09:00:00Z"}
    found = problems(
        tmp_path, {"people": {"alice": {"timezone": "UTC"}}, "schedules": {"p": _schedule(overrides=[override])}}
    )
    assert found == {"oncall": "schedules.p.overrides.0.person: 'mallory' is not in oncall.people"}


SHAPED = """
oncall:
  people: {alice: {timezone: UTC}, bob: {timezone: UTC}, carol: {timezone: UTC}}
  schedules:
    primary:
      timezone: Europe/Berlin
      layers:
        - rotations:
            - participants: [alice, {name: bob, joins: 2027-01-04T09:00}, {name: carol, leaves: "2027-02-01T09:00"}]
              shift: daily
              start: "2026-12-07T09:00"
              days: [mon, tue, wed, thu, fri]
              off_slots: [{days: [sat, sun]}, {from: "18:00", to: "09:00"}, {days: [fri], from: "12:00"}]
"""


def test_masks_off_slots_joins_and_leaves_build_the_rotation(tmp_path: Path) -> None:
    path = tmp_path / "receiver.yml"
    path.write_text(SHAPED)
    settings = config.load(path, {})
    (layer,) = settings.oncall.schedule_values()["primary"].layers
    assert layer.rotations == (
        Rotation(
            ("alice", "bob", "carol"),
            DAILY,
            datetime(2026, 12, 7, 9, 0),
            days=frozenset(range(5)),
            off=(
                OffSlot(frozenset({5, 6})),
                OffSlot(begin=time(18), end=time(9)),
                OffSlot(frozenset({4}), time(12), time(0)),
            ),
            changes=(
                Change("bob", datetime(2027, 1, 4, 9, 0), joins=True),
                Change("carol", datetime(2027, 2, 1, 9, 0), joins=False),
            ),
        ),
    )
    dumped = settings.oncall.model_dump(mode="json")
    assert dumped["schedules"]["primary"]["layers"][0]["rotations"][0]["off_slots"][1] == {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "from": "18:00:00",
        "to": "09:00:00",
    }
    assert config.OncallSettings.model_validate(dumped) == settings.oncall


_WHERE = "oncall.schedules.p.layers.0.rotations.0"


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"days": ["monday"]}, f"{_WHERE}.days.0", "'monday' is not a weekday: mon, tue"),
        ({"days": []}, f"{_WHERE}.days", "at least 1"),
        ({"off_slots": [{"from": 1080}]}, f"{_WHERE}.off_slots.0.from", 'quote the time of day ("18:00")'),
        ({"off_slots": [{"to": "25:00"}]}, f"{_WHERE}.off_slots.0.to", "not a local time of day"),
        ({"off_slots": [{"to": "09:00+01:00"}]}, f"{_WHERE}.off_slots.0.to", "no offset"),
        ({"off_slots": [{"days": ["sat"], "until": "09:00"}]}, f"{_WHERE}.off_slots.0.until", "unknown setting"),
        ({False: [{"days": ["sat"]}]}, _WHERE, "write off_slots"),
        (
            {"participants": [{"name": "alice", "joins": "2027-01-04T09:00Z"}]},
            f"{_WHERE}.participants.0.joins",
            "give no offset",
        ),
        (
            {"participants": [{"name": "alice", "joins": "2027-01-04T09:00", "leaves": "2027-01-04T09:00"}]},
            f"{_WHERE}.participants.0",
            "joins and leaves at the same time",
        ),
        ({"participants": [{"name": "alice", "away": True}]}, f"{_WHERE}.participants.0.away", "unknown setting"),
        (
            {"participants": ["alice", {"name": "alice", "leaves": "2027-01-04T09:00"}]},
            _WHERE,
            "alice joins or leaves but is listed more than once",
        ),
    ],
)
def test_bad_shapes_name_the_key(tmp_path: Path, changes: dict[object, object], key: str, message: str) -> None:
    rotation: dict[object, object] = {**_rotation(), **changes}
    found = problems(
        tmp_path,
        {"people": {"alice": {"timezone": "UTC"}}, "schedules": {"p": _schedule(layers=[{"rotations": [rotation]}])}},
    )
    assert key in found, found
    assert message in found[key]


def test_an_unquoted_yaml_time_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "receiver.yml"
    path.write_text(SHAPED.replace('from: "18:00"', "from: 18:00"))
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, {})
    assert dict(caught.value.problems) == {
        "oncall.schedules.primary.layers.0.rotations.0.off_slots.1.from": (
            '1080: quote the time of day ("18:00"): YAML reads 18:00 unquoted as a number'
        )
    }


def test_a_joining_participant_who_is_not_a_person_is_named_with_the_key_path(tmp_path: Path) -> None:
    rotation = _rotation(participants=["alice", {"name": "dave", "joins": "2027-01-04T09:00"}])
    found = problems(
        tmp_path,
        {"people": {"alice": {"timezone": "UTC"}}, "schedules": {"p": _schedule(layers=[{"rotations": [rotation]}])}},
    )
    assert found == {"oncall": "schedules.p.layers.0.rotations.0.participants.1: 'dave' is not in oncall.people"}
