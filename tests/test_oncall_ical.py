"""The iCalendar export: exact text of a small calendar, TEXT escaping and folding tables, a real parser's reading.

The parser (``icalendar``) reads back every event with its times, summary and UID, names carrying every
character TEXT must escape included; folding is checked as a property over any text: no line over 75
octets, every cut between characters, and unfolding gives the line back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.oncall.ical import Event, calendar, events, fold, text, uid, window
from receiver.oncall.schedules import DAILY, Layer, Override, Rotation, Schedule, Shift

BERLIN = ZoneInfo("Europe/Berlin")
STAMP = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
DAILY_AB = Schedule("primary", BERLIN, (Layer((Rotation(("alice", "bob"), DAILY, datetime(2026, 12, 7, 9, 0)),)),))


def _utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def test_a_small_calendar_is_exactly_this_text() -> None:
    found = events(DAILY_AB, _utc(7, 0), _utc(9, 0))
    assert calendar("On call: primary", found, STAMP) == (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//receiver//on call//EN\r\n"
        "CALSCALE:GREGORIAN\r\n"
        "METHOD:PUBLISH\r\n"
        "X-WR-CALNAME:On call: primary\r\n"
        "BEGIN:VEVENT\r\n"
        "UID:primary/alice/20261207T080000Z@receiver\r\n"
        "DTSTAMP:20261201T060000Z\r\n"
        "DTSTART:20261207T080000Z\r\n"
        "DTEND:20261208T080000Z\r\n"
        "SUMMARY:On call: alice (primary)\r\n"
        "TRANSP:TRANSPARENT\r\n"
        "END:VEVENT\r\n"
        "BEGIN:VEVENT\r\n"
        "UID:primary/bob/20261208T080000Z@receiver\r\n"
        "DTSTAMP:20261201T060000Z\r\n"
        "DTSTART:20261208T080000Z\r\n"
        "DTEND:20261209T000000Z\r\n"
        "SUMMARY:On call: bob (primary)\r\n"
        "TRANSP:TRANSPARENT\r\n"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )


def test_a_calendar_without_shifts_is_still_a_calendar() -> None:
    empty = calendar("On call: nobody", [], STAMP)
    assert empty.startswith("BEGIN:VCALENDAR\r\n") and empty.endswith("END:VCALENDAR\r\n")
    assert "VEVENT" not in empty
    assert icalendar.Calendar.from_ical(empty)["X-WR-CALNAME"] == "On call: nobody"


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ("a,b", "a\\,b"),
        ("a;b", "a\\;b"),
        ("back\\slash", "back\\\\slash"),
        ("two\nlines", "two\\nlines"),
        ("crlf\r\nand cr\r", "crlf\\nand cr\\n"),
        ("\\;,", "\\\\\\;\\,"),
        ("tab\tkept", "tab\tkept"),
        ("bell\x07 and del\x7f", "bell  and del "),
        ("üñí ☎", "üñí ☎"),
        (":colon stays", ":colon stays"),
    ],
)
def test_text_escaping(value: str, escaped: str) -> None:
    assert text(value) == escaped


@pytest.mark.parametrize(
    ("line", "pieces"),
    [
        ("a" * 75, ["a" * 75]),
        ("a" * 76, ["a" * 75, " a"]),
        ("a" * 149, ["a" * 75, " " + "a" * 74]),
        ("a" * 150, ["a" * 75, " " + "a" * 74, " a"]),
        ("a" * 74 + "é", ["a" * 74, " é"]),  # é is two octets: 76 would split it
        ("a" * 73 + "é", ["a" * 73 + "é"]),
        ("a" * 72 + "😀", ["a" * 72, " 😀"]),  # four octets
        ("a" * 71 + "😀", ["a" * 71 + "😀"]),
        ("", [""]),
    ],
)
def test_folding(line: str, pieces: list[str]) -> None:
    assert fold(line) == pieces


@given(st.text(max_size=400))
def test_folded_lines_fit_and_unfold_to_the_line(line: str) -> None:
    pieces = fold(line)
    assert all(len(piece.encode()) <= 75 for piece in pieces)
    assert all(piece.startswith(" ") for piece in pieces[1:])
    assert pieces[0] + "".join(piece[1:] for piece in pieces[1:]) == line


def test_a_real_parser_reads_every_event_with_escaped_names_and_long_lines() -> None:
    person = 'O\'Brien, Jr.; "the \\ night" owl ☎ ' + "ü" * 40
    shift = Shift(person, _utc(7, 8), _utc(8, 8))
    second = Shift("bob", _utc(8, 8), _utc(9, 8, 30))
    body = calendar("On call: night, owls; all", [Event("night", shift), Event("night", second)], STAMP)
    assert all(len(line.encode()) <= 75 for line in body.split("\r\n"))
    assert "\n" not in body.replace("\r\n", "")
    parsed = icalendar.Calendar.from_ical(body)
    assert parsed["X-WR-CALNAME"] == "On call: night\\, owls\\; all"  # an X- property: kept as written
    assert parsed["METHOD"] == "PUBLISH" and parsed["VERSION"] == "2.0"
    read = [(str(e["SUMMARY"]), e.decoded("DTSTART"), e.decoded("DTEND"), str(e["UID"])) for e in parsed.walk("VEVENT")]
    assert read == [
        (f"On call: {person} (night)", _utc(7, 8), _utc(8, 8), uid(Event("night", shift))),
        ("On call: bob (night)", _utc(8, 8), _utc(9, 8, 30), "night/bob/20261208T080000Z@receiver"),
    ]
    assert all(e.decoded("DTSTAMP") == STAMP for e in parsed.walk("VEVENT"))


def test_a_shift_keeps_its_uid_when_fetched_again_later_the_same_day() -> None:
    morning, evening = window(_utc(7, 1), 1), window(_utc(7, 23, 59), 1)
    assert morning == evening == (_utc(7, 0), _utc(14, 0))
    assert [uid(e) for e in events(DAILY_AB, *morning)] == [uid(e) for e in events(DAILY_AB, *evening)]


@pytest.mark.parametrize(
    ("now", "weeks", "expected"),
    [
        (_utc(7, 9, 30), 4, (_utc(7, 0), _utc(7, 0) + timedelta(weeks=4))),
        (datetime(2026, 12, 7, 0, 30, tzinfo=BERLIN), 1, (_utc(6, 0), _utc(13, 0))),  # 23:30 UTC the day before
        (_utc(1, 0), 52, (_utc(1, 0), _utc(1, 0) + timedelta(weeks=52))),
    ],
)
def test_the_window_starts_at_midnight_utc(now: datetime, weeks: int, expected: tuple[datetime, datetime]) -> None:
    assert window(now, weeks) == expected


def test_only_the_persons_shifts_when_asked_and_overrides_included() -> None:
    carol = Override("carol", _utc(7, 12), _utc(7, 14))
    schedule = Schedule("primary", BERLIN, DAILY_AB.layers, (carol,))
    everyone = events(schedule, _utc(7, 0), _utc(9, 0))
    assert [(e.shift.person, e.shift.start, e.shift.end) for e in everyone] == [
        ("alice", _utc(7, 8), _utc(7, 12)),
        ("carol", _utc(7, 12), _utc(7, 14)),
        ("alice", _utc(7, 14), _utc(8, 8)),
        ("bob", _utc(8, 8), _utc(9, 0)),
    ]
    assert [e.shift for e in events(schedule, _utc(7, 0), _utc(9, 0), "carol")] == [Shift("carol", *carol_span())]
    assert events(schedule, _utc(7, 0), _utc(9, 0), "dave") == []


def carol_span() -> tuple[datetime, datetime]:
    return _utc(7, 12), _utc(7, 14)
