"""``receiver escalation plan``: who gets paged, when, and through which channel, if nobody acknowledges.

``plan --incident ID`` reads the incident and where its escalation stands from the store, and prints the
rest of its ladder; ``plan --severity SEV1 [--at TIME]`` prints the ladder a new incident of that severity
would start at ``TIME`` (default now). Schedules are evaluated at each step's own time, so a handoff
during the ladder shows. Exit 2 for a usage error, 1 when the store cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from receiver import config
from receiver.cli.oncall import instant
from receiver.clock import Clock, utc_now
from receiver.incidents.book import Incident
from receiver.notify.escalation import Ladders, Planned, plan
from receiver.notify.routing import IncidentFacts
from receiver.oncall.policies import Escalation, Policy
from receiver.store import StoreError, backends

EXIT_USAGE = 2
EXIT_STORE = 1
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``escalation plan`` to the command line."""
    actions = commands.add_parser("escalation", help="escalation policies").add_subparsers(dest="action", required=True)
    ask = actions.add_parser("plan", help="print who is paged when, if nobody acknowledges")
    which = ask.add_mutually_exclusive_group(required=True)
    which.add_argument("--incident", help="an incident id (INC-20261201-0001): the rest of its escalation")
    which.add_argument("--severity", choices=SEVERITIES, help="the ladder a new incident of this severity starts")
    ask.add_argument("--at", type=instant, help="with --severity: when it opens (default: now)")
    ask.add_argument("--config", type=str, help="YAML settings file")


def run(args: argparse.Namespace, settings: config.Settings, clock: Clock = utc_now) -> int:
    """Carry out ``receiver escalation plan``; the exit status."""
    ladders = settings.ladders()
    if not ladders.policies:
        print("no escalation policy is configured (oncall.policies, or schedules named primary...)", file=sys.stderr)
        return EXIT_USAGE
    if args.incident is not None:
        return asyncio.run(_incident(settings, ladders, args.incident, clock))
    policy = _by_severity(ladders, args.severity)
    if policy is None:
        print(f"no policy takes a {args.severity} incident (oncall.policy_routes, default)", file=sys.stderr)
        return EXIT_USAGE
    at = args.at or clock()
    _print(plan(ladders, policy, Escalation("", policy.name, 0, 0, at, at)), policy)
    return 0


def _by_severity(ladders: Ladders, severity: str) -> Policy | None:
    """The policy a new incident of ``severity`` (and no other label) escalates by."""
    return ladders.choose_for(IncidentFacts(severity, "triggered", frozenset(), {}))


async def _incident(settings: config.Settings, ladders: Ladders, id: str, clock: Clock) -> int:
    store = backends.create(settings, role="engine")
    try:
        await store.open()
        found = await store.incident(id, timeline_limit=0)
        if found is None:
            print(f"no incident {id}", file=sys.stderr)
            return EXIT_USAGE
        at = await store.escalation_of(id)
    except StoreError as err:
        print(f"cannot read the store: {err}", file=sys.stderr)
        return EXIT_STORE
    finally:
        await store.close()
    return _show(ladders, found[0], at, clock())


def _show(ladders: Ladders, incident: Incident, at: Escalation | None, now: datetime) -> int:
    if at is None:
        print(f"{incident.id} is not escalating ({incident.status.value}): nobody will be paged")
        return 0
    policy = ladders.policies.get(at.policy)
    if policy is None:
        print(f"{incident.id} escalates by {at.policy!r}, which is no longer configured", file=sys.stderr)
        return EXIT_USAGE
    _print(plan(ladders, policy, at), policy)
    return 0


def _print(lines: list[Planned], policy: Policy) -> None:
    print(f"policy {policy.name}: {len(policy.steps)} steps, {policy.rounds} round(s)")
    for line in sorted(lines, key=lambda p: p.at):
        how = f"  {line.how}" if line.how else ""
        print(f"{_utc(line.at)}  {line.where}: {line.who}{how}")


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
