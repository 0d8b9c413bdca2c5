"""Shifts as an iCalendar (RFC 5545) calendar, so people see when they are on call in their own calendar app.

A calendar client subscribes to ``GET /api/v1/schedules/{name}.ics`` (or a person's) and fetches it again
from time to time; each shift is one VEVENT whose UID is made of its schedule, person and start, so a
shift keeps its UID from one fetch to the next. Times are UTC (``Z``): the client shows them in its own
zone. Text values are escaped (``\\ ; ,`` and newlines), lines end in CRLF and are folded at 75 octets
without splitting a UTF-8 character. Pure: the stamp and the window are given, nothing is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from receiver.oncall.schedules import Schedule, Shift, shifts

PRODID = "-//receiver//on call//EN"
LINE_OCTETS = 75
"""RFC 5545 3.1: a content line is at most 75 octets, line break excluded."""
CRLF = "\r\n"
_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", ";": "\\;", ",": "\\,", "\n": "\\n"})
_CONTROLS = {c: " " for c in (*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F)}
"""Controls other than tab (newline is escaped before): TEXT cannot carry them, a space stands in."""


@dataclass(frozen=True)
class Event:
    """One shift of one schedule, as a calendar shows it."""

    schedule: str
    shift: Shift


def window(now: datetime, weeks: int) -> tuple[datetime, datetime]:
    """From 00:00 UTC of ``now``'s day for ``weeks`` weeks: fetches on one day give the same events (pure)."""
    start = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    return start, start + timedelta(weeks=weeks)


def events(schedule: Schedule, start: datetime, end: datetime, person: str | None = None) -> list[Event]:
    """The schedule's shifts from ``start`` to ``end`` (only ``person``'s when given), as events (pure)."""
    return [Event(schedule.name, s) for s in shifts(schedule, start, end) if person is None or s.person == person]


def calendar(name: str, found: Iterable[Event], stamp: datetime) -> str:
    """A VCALENDAR named ``name`` with one VEVENT per event, in start order; ``stamp`` is every DTSTAMP."""
    ordered = sorted(found, key=lambda e: (e.shift.start, e.schedule, e.shift.person))
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{text(name)}",
        *(line for event in ordered for line in _vevent(event, stamp)),
        "END:VCALENDAR",
    ]
    return "".join(f"{folded}{CRLF}" for line in lines for folded in fold(line))


def _vevent(event: Event, stamp: datetime) -> Iterator[str]:
    shift = event.shift
    yield "BEGIN:VEVENT"
    yield f"UID:{text(uid(event))}"
    yield f"DTSTAMP:{utc(stamp)}"
    yield f"DTSTART:{utc(shift.start)}"
    yield f"DTEND:{utc(shift.end)}"
    yield f"SUMMARY:{text(f'On call: {shift.person} ({event.schedule})')}"
    yield "TRANSP:TRANSPARENT"
    yield "END:VEVENT"


def uid(event: Event) -> str:
    """The event's stable identity: schedule, person and start (the same shift has it in every fetch)."""
    return f"{event.schedule}/{event.shift.person}/{utc(event.shift.start)}@receiver"


def utc(at: datetime) -> str:
    """A DATE-TIME in UTC form (``20261207T080000Z``)."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def text(value: str) -> str:
    """``value`` as a TEXT property value: backslash, semicolon, comma and newlines escaped (RFC 5545 3.3.11)."""
    one_break = value.replace("\r\n", "\n").replace("\r", "\n")
    return one_break.translate(_TEXT_ESCAPES).translate(_CONTROLS)


def fold(line: str) -> list[str]:
    """``line`` cut into lines of at most 75 octets, each after the first starting with a space (its first octet).

    A cut never falls inside a UTF-8 character.
    """
    pieces: list[str] = []
    current, room = "", LINE_OCTETS
    for char in line:
        size = len(char.encode())
        if size > room:
            pieces.append(current)
            current, room = " ", LINE_OCTETS - 1
        current += char
        room -= size
    pieces.append(current)
    return pieces
