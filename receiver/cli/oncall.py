"""``receiver oncall who`` and ``oncall shifts``: ask the configured schedules who is on call, and when.

``who [--schedule S] [--at TIME]`` prints ``schedule: person`` for one schedule or all of them (``nobody``
when nobody is on call), at ``TIME`` or now. ``shifts --schedule S --from T --to T`` prints the shifts
in that window, clipped to it, each in UTC and in the schedule's own zone, so a handoff across a DST
change can be read off directly. Both read the settings only: no store, no daemon. ``coverage_warnings``
is what ``receiver config check`` prints of the coverage check (gaps ahead: warnings, not errors).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from receiver import config
from receiver.clock import Clock, utc_now
from receiver.oncall.coverage import check
from receiver.oncall.schedules import Schedule, Shift, shifts, who

EXIT_USAGE = 2


def instant(text: str) -> datetime:
    """An aware ISO 8601 instant from the command line (argparse reports what is wrong as a usage error)."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 instant like 2026-12-07T09:00+01:00") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give the instant with its UTC offset (+01:00 or Z)")
    return at


def add_parser(commands: Any) -> None:
    """Add ``oncall`` and its actions to the command line."""
    actions = commands.add_parser("oncall", help="who is on call").add_subparsers(dest="action", required=True)
    ask = actions.add_parser("who", help="print who is on call per schedule")
    ask.add_argument("--schedule", help="a name from oncall.schedules (default: every schedule)")
    ask.add_argument("--at", type=instant, help="an ISO 8601 instant with its offset (default: now)")
    ask.add_argument("--config", type=str, help="YAML settings file")
    window = actions.add_parser("shifts", help="print a schedule's shifts in a window")
    window.add_argument("--schedule", required=True, help="a name from oncall.schedules")
    window.add_argument("--from", dest="start", required=True, type=instant, help="ISO 8601 instant")
    window.add_argument("--to", dest="end", required=True, type=instant, help="ISO 8601 instant")
    window.add_argument("--config", type=str, help="YAML settings file")


def run(args: argparse.Namespace, settings: config.Settings, clock: Clock = utc_now) -> int:
    """Carry out ``receiver oncall <action>``; the exit status."""
    schedules = settings.oncall.schedule_values()
    if not schedules:
        print("no schedule is configured (oncall.schedules)", file=sys.stderr)
        return EXIT_USAGE
    if args.schedule is not None and args.schedule not in schedules:
        print(f"no schedule {args.schedule!r}: configured are {', '.join(sorted(schedules))}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "who":
        chosen = [schedules[args.schedule]] if args.schedule else [schedules[n] for n in sorted(schedules)]
        at = args.at or clock()
        for schedule in chosen:
            print(f"{schedule.name}: {who(schedule, at) or 'nobody'}")
        return 0
    if args.end <= args.start:
        print("--to must be after --from", file=sys.stderr)
        return EXIT_USAGE
    schedule = schedules[args.schedule]
    found = shifts(schedule, args.start, args.end)
    for shift in found:
        print(describe(shift, schedule))
    if not found:
        print(f"nobody is on call from {_utc(args.start)} to {_utc(args.end)}")
    return 0


def coverage_warnings(settings: config.Settings, now: datetime) -> list[str]:
    """One line per finding of the coverage check from ``now`` (``oncall.coverage.weeks`` ahead), by key."""
    oncall = settings.oncall
    coverage = check(oncall.schedule_values(), now, oncall.coverage.weeks, *settings.coverage_policies())
    return [f"warning: {finding.where}: {finding.describe()}" for finding in coverage.findings]


def describe(shift: Shift, schedule: Schedule) -> str:
    """One line for a shift: UTC span, person, and the span in the schedule's zone (with its offsets)."""
    local = f"{_local(shift.start, schedule)} to {_local(shift.end, schedule)}"
    return f"{_utc(shift.start)} to {_utc(shift.end)}  {shift.person}  ({schedule.zone.key}: {local})"


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(at: datetime, schedule: Schedule) -> str:
    return at.astimezone(schedule.zone).isoformat()
