"""The dead man's switch: an alerting pipeline that stops sending ``Watchdog`` is an incident of its own.

kube-prometheus fires ``Watchdog`` all the time so that something outside
Prometheus and Alertmanager notices when they stop: routed to this daemon
with a short ``repeat_interval``, it arrives every few minutes. When it has
not arrived for ``missing_after``, the daemon opens its own incident ("the
alerting pipeline is down: no Watchdog since ...") once, and it resolves
when the Watchdog comes back (then quiet for the quiet period, like any
incident). Before the first Watchdog ever arrives nothing is raised: a
daemon installed without the route (kube-prometheus-stack sends Watchdog to
a ``null`` receiver by default) would otherwise open an incident at once
and forever; ``receiver_watchdog_last_seen_timestamp_seconds`` stays 0 then,
which an alert rule can watch.

The last arrival is the alert store's ``lastSeen`` of the matching alerts
(it survives restarts); the decision is a pure function of it, ``now`` and
the policy, asked on the engine's upkeep cycle (a deadline, not a timer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from receiver.alerts.matchers import Matcher, parse
from receiver.incidents.severity import Severity

ALARM_FINGERPRINT = "receiver-watchdog"
"""The fingerprint of the daemon's own alert in its incident (no alert from Alertmanager has one like it)."""
ALARM_NAME = "AlertingPipelineDown"


@dataclass(frozen=True, slots=True)
class WatchdogPolicy:
    """From the configuration (``incidents.watchdog``)."""

    enabled: bool = True
    matchers: tuple[Matcher, ...] = (parse('alertname="Watchdog"'),)
    missing_after: timedelta = timedelta(minutes=10)
    severity: Severity = Severity.SEV2


Verdict = Literal["raise", "clear"]


def missing(last_seen: datetime | None, now: datetime, policy: WatchdogPolicy) -> bool:
    """Whether the watchdog is overdue: seen once, and not for ``missing_after``. Pure."""
    return policy.enabled and last_seen is not None and now - last_seen >= policy.missing_after


def verdict(last_seen: datetime | None, now: datetime, policy: WatchdogPolicy, raised: bool) -> Verdict | None:
    """What to do now: raise the alarm (once), clear it (the watchdog is back), or nothing. Pure."""
    overdue = missing(last_seen, now, policy)
    if overdue and not raised:
        return "raise"
    if raised and not overdue and (last_seen is not None or not policy.enabled):
        return "clear"
    return None


def alarm_labels(policy: WatchdogPolicy) -> dict[str, str]:
    """The labels of the daemon's own alert: classified by its severity like any source's."""
    return {"alertname": ALARM_NAME, "severity": str(policy.severity)}


def alarm_title(last_seen: datetime) -> str:
    """The incident's title: what is wrong, since when."""
    return f"the alerting pipeline is down: no Watchdog since {last_seen.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
