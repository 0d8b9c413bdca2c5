"""The engine's coverage check: at its start and daily after, the gaps in the schedules ahead, logged and counted.

A gap found weeks ahead is a warning people can act on before a page reaches nobody. The engine checks
every configured schedule over the next ``oncall.coverage.weeks`` (``receiver.oncall.coverage``, pure),
logs each gap at warning level and reports the uncovered seconds per schedule, with the check's time,
for ``/metrics`` (``receiver_oncall_coverage_gap_seconds``), where the chart's alert reads them. The time
is the injected clock's; the wait between checks is ``sleep``'s (a test passes its own). Evaluating weeks
of hourly rotations takes a while (seconds for a year of them), so the check runs in a worker thread:
the engine's loop goes on processing meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta

from receiver.clock import Clock
from receiver.metrics import Tally
from receiver.oncall.coverage import Finding, Gap, check
from receiver.oncall.policies import Policy
from receiver.oncall.schedules import Schedule

log = logging.getLogger(__name__)
EVERY = timedelta(days=1)
"""How often the check runs after the first, at the engine's start."""
Sleep = Callable[[float], Awaitable[None]]


def checked(
    schedules: Mapping[str, Schedule],
    now: datetime,
    weeks: int,
    policies: Mapping[str, Policy] | None = None,
    reachable: Collection[str] = (),
) -> Tally:
    """Check coverage from ``now`` for ``weeks`` weeks: each finding (a gap, an escalation step that pages
    nobody) logged at warning; the totals as a Tally."""
    coverage = check(schedules, now, weeks, policies, reachable)
    for finding in coverage.findings:
        log.warning(
            "on-call coverage gap in %s: %s",
            finding.where,
            finding.describe(),
            extra={"where": finding.where, **_about(finding), "start": _iso(finding.start), "end": _iso(finding.end)},
        )
    if not coverage.findings:
        log.info("every schedule has someone on call until %s", _iso(coverage.end))
    return Tally(coverage_gaps=coverage.gap_seconds(), coverage_checked=now.timestamp())


async def coverage_loop(
    schedules: Mapping[str, Schedule],
    weeks: int,
    clock: Clock,
    report: Callable[[Tally], None],
    sleep: Sleep = asyncio.sleep,
    every: timedelta = EVERY,
    policies: Mapping[str, Policy] | None = None,
    reachable: Collection[str] = (),
) -> None:
    """Check now, then every ``every``, until cancelled; each result goes to ``report``."""
    while True:
        report(await asyncio.to_thread(checked, schedules, clock(), weeks, policies, reachable))
        await sleep(every.total_seconds())


def _about(finding: Finding) -> dict[str, str]:
    """What a log line names: the schedule with a gap, or the policy whose step pages nobody."""
    return {"schedule": finding.schedule} if isinstance(finding, Gap) else {"policy": finding.policy}


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
