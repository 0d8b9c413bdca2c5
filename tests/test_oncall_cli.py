"""``receiver oncall who`` and ``oncall shifts`` run in-process against a settings file: output and exit statuses."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from receiver import cli, config
from receiver.cli import oncall as oncall_cli
from receiver.clock import FixedClock

SETTINGS = {
    "oncall": {
        "people": {"alice": {"timezone": "Europe/Berlin"}, "bob": {"timezone": "UTC"}, "carol": {"timezone": "UTC"}},
        "schedules": {
            "primary": {
                "timezone": "Europe/Berlin",
                "layers": [
                    {"rotations": [{"participants": ["alice", "bob"], "shift": "daily", "start": "2027-03-26T09:00"}]}
                ],
                "overrides": [{"person": "carol", "start": "2027-03-29T12:00:00Z", "end": "2027-03-29T14:00:00Z"}],
            },
            "secondary": {
                "timezone": "UTC",
                "layers": [
                    {"rotations": [{"participants": ["carol"], "shift": "weekly", "start": "2027-04-01T00:00"}]}
                ],
            },
        },
    }
}


@pytest.fixture
def settings_file(tmp_path: Path) -> str:
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump(SETTINGS))
    return str(path)


def test_who_prints_every_schedule_with_nobody_where_nobody_is(
    settings_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["oncall", "who", "--at", "2027-03-27T09:30:00+01:00", "--config", settings_file]) == 0
    assert capsys.readouterr().out == "primary: bob\nsecondary: nobody\n"


def test_who_for_one_schedule_sees_the_override(settings_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["oncall", "who", "--schedule", "primary", "--at", "2027-03-29T12:30Z", "--config", settings_file])
        == 0
    )
    assert capsys.readouterr().out == "primary: carol\n"


def test_shifts_print_utc_and_local_times_across_the_dst_change(
    settings_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Berlin springs forward on 2027-03-28: the 09:00 handoff moves from 08:00 UTC to 07:00 UTC."""
    argv = ["oncall", "shifts", "--schedule", "primary", "--config", settings_file]
    assert cli.main([*argv, "--from", "2027-03-27T00:00:00Z", "--to", "2027-03-29T13:00:00Z"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2027-03-27T00:00:00Z to 2027-03-27T08:00:00Z  alice"
        "  (Europe/Berlin: 2027-03-27T01:00:00+01:00 to 2027-03-27T09:00:00+01:00)",
        "2027-03-27T08:00:00Z to 2027-03-28T07:00:00Z  bob"
        "  (Europe/Berlin: 2027-03-27T09:00:00+01:00 to 2027-03-28T09:00:00+02:00)",
        "2027-03-28T07:00:00Z to 2027-03-29T07:00:00Z  alice"
        "  (Europe/Berlin: 2027-03-28T09:00:00+02:00 to 2027-03-29T09:00:00+02:00)",
        "2027-03-29T07:00:00Z to 2027-03-29T12:00:00Z  bob"
        "  (Europe/Berlin: 2027-03-29T09:00:00+02:00 to 2027-03-29T14:00:00+02:00)",
        "2027-03-29T12:00:00Z to 2027-03-29T13:00:00Z  carol"
        "  (Europe/Berlin: 2027-03-29T14:00:00+02:00 to 2027-03-29T15:00:00+02:00)",
    ]


def test_shifts_where_nobody_is_on_call_say_so(settings_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["oncall", "shifts", "--schedule", "secondary", "--config", settings_file]
    assert cli.main([*argv, "--from", "2027-03-01T00:00:00+01:00", "--to", "2027-03-02T00:00:00+01:00"]) == 0
    assert capsys.readouterr().out == "nobody is on call from 2027-02-28T23:00:00Z to 2027-03-01T23:00:00Z\n"


@pytest.mark.parametrize("action", [["who"], ["shifts", "--from", "2027-03-27T00:00Z", "--to", "2027-03-28T00:00Z"]])
def test_an_unknown_schedule_exits_2_naming_the_configured_ones(
    settings_file: str, capsys: pytest.CaptureFixture[str], action: list[str]
) -> None:
    assert cli.main(["oncall", *action, "--schedule", "tertiary", "--config", settings_file]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "no schedule 'tertiary': configured are primary, secondary\n"


def test_no_schedules_configured_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "receiver.yml"
    path.write_text("oncall: {people: {alice: {timezone: UTC}}}\n")
    assert cli.main(["oncall", "who", "--config", str(path)]) == 2
    assert "no schedule is configured (oncall.schedules)" in capsys.readouterr().err


def test_a_window_ending_before_it_starts_exits_2(settings_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["oncall", "shifts", "--schedule", "primary", "--config", settings_file]
    assert cli.main([*argv, "--from", "2027-03-28T00:00Z", "--to", "2027-03-27T00:00Z"]) == 2
    assert "--to must be after --from" in capsys.readouterr().err


@pytest.mark.parametrize(("at", "message"), [("2027-03-27T09:30", "UTC offset"), ("tomorrow", "ISO 8601")])
def test_a_bad_instant_is_a_usage_error(
    settings_file: str, capsys: pytest.CaptureFixture[str], at: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["oncall", "who", "--at", at, "--config", settings_file])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_settings_file_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "receiver.yml"
    path.write_text("oncall: {people: {alice: {timezone: Nowhere/Special}}}\n")
    assert cli.main(["oncall", "who", "--config", str(path)]) == 2
    assert "oncall.people.alice.timezone" in capsys.readouterr().err


def test_who_without_at_asks_the_clock(settings_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = config.load(Path(settings_file), {})
    args = argparse.Namespace(action="who", schedule=None, at=None)
    assert oncall_cli.run(args, settings, FixedClock(datetime(2027, 4, 2, 12, 0, tzinfo=UTC))) == 0
    assert capsys.readouterr().out == "primary: bob\nsecondary: carol\n"  # 2027-04-02 is shift 7 of alice, bob


WEEKDAYS = """
oncall:
  people: {alice: {timezone: UTC}, bob: {timezone: UTC}, carol: {timezone: UTC}}
  schedules:
    weekdays:
      timezone: Europe/Berlin
      layers:
        - rotations:
            - participants: [alice, {name: bob, joins: "2027-03-30T12:00"}, carol]
              shift: daily
              start: "2027-03-22T09:00"
              days: [mon, tue, wed, thu, fri]
              off_slots: [{from: "20:00", to: "07:00"}]
"""


def test_shifts_leave_out_off_slots_and_inactive_days_and_who_sees_a_join(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Weekdays only, nobody 20:00–07:00; Friday's turn ends Saturday 09:00; bob's join counts from Wednesday."""
    path = tmp_path / "receiver.yml"
    path.write_text(WEEKDAYS)
    argv = ["oncall", "shifts", "--schedule", "weekdays", "--config", str(path)]
    assert cli.main([*argv, "--from", "2027-03-26T00:00:00Z", "--to", "2027-03-30T12:00:00Z"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2027-03-26T06:00:00Z to 2027-03-26T08:00:00Z  carol"
        "  (Europe/Berlin: 2027-03-26T07:00:00+01:00 to 2027-03-26T09:00:00+01:00)",
        "2027-03-26T08:00:00Z to 2027-03-26T19:00:00Z  alice"
        "  (Europe/Berlin: 2027-03-26T09:00:00+01:00 to 2027-03-26T20:00:00+01:00)",
        "2027-03-27T06:00:00Z to 2027-03-27T08:00:00Z  alice"
        "  (Europe/Berlin: 2027-03-27T07:00:00+01:00 to 2027-03-27T09:00:00+01:00)",
        "2027-03-29T07:00:00Z to 2027-03-29T18:00:00Z  carol"
        "  (Europe/Berlin: 2027-03-29T09:00:00+02:00 to 2027-03-29T20:00:00+02:00)",
        "2027-03-30T05:00:00Z to 2027-03-30T07:00:00Z  carol"
        "  (Europe/Berlin: 2027-03-30T07:00:00+02:00 to 2027-03-30T09:00:00+02:00)",
        "2027-03-30T07:00:00Z to 2027-03-30T12:00:00Z  alice"
        "  (Europe/Berlin: 2027-03-30T09:00:00+02:00 to 2027-03-30T14:00:00+02:00)",
    ]
    assert cli.main(["oncall", "who", "--at", "2027-03-31T09:30:00+02:00", "--config", str(path)]) == 0
    assert cli.main(["oncall", "who", "--at", "2027-03-31T21:30:00+02:00", "--config", str(path)]) == 0
    assert capsys.readouterr().out == "weekdays: bob\nweekdays: nobody\n"
