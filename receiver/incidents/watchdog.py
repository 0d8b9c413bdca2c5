"""The dead man's switch: an alerting pipeline that stops sending ``Watchdog`` is an incident of its own.

kube-prometheus fires ``Watchdog`` all the time so that something outside
Prometheus and Alertmanager notices when they stop: routed to this daemon
with a short ``repeat_interval``, it arrives every few minutes. When it has
not arrived for ``missing_after``, the daemon opens its own incident ("the
alerting pipeline is down: no Watchdog since ...") once, and it resolves
when the Watchdog comes back (then quiet for the quiet period, like any
incident).

The switch is *armed* only once the Watchdog has been seen arriving twice
less than ``missing_after`` apart. Before the first Watchdog ever arrives
nothing is raised: a daemon installed without the route (kube-prometheus-stack
sends Watchdog to a ``null`` receiver by default) would otherwise open an
incident at once and forever. And a Watchdog that arrives only every 12
hours (kube-prometheus-stack's ``repeat_interval``, when it is routed here
without a route of its own) cannot tell an outage from its next repeat: it
would raise a false alarm 10 minutes after each arrival, so it never arms
(and the engine says so in its log).

An arrival is a firing alert the matchers select, at its dedup ``lastSeen``
(HA peers' copies of one notification, within ``seen_resolution``, are one
arrival). The last two (``Sightings``) are written to the store in the
transaction that processes the notification carrying it, and read back when
the engine starts: an armed switch stays armed across a restart, and its
deadline (the last arrival + ``missing_after``) does not move. The check
runs on the engine's upkeep cycle; ``arrived`` and the decision are pure
functions of the sightings, ``now`` and the policy (a deadline, not a timer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from receiver.alerts.dedup import AlertState
from receiver.alerts.matchers import Matcher, match_all, parse
from receiver.alerts.wire import Alert
from receiver.incidents.severity import Severity

ALARM_FINGERPRINT = "receiver-watchdog"
"""The fingerprint of the daemon's own alert in its incident (no alert from Alertmanager has one like it)."""
ALARM_NAME = "AlertingPipelineDown"
ALARM_SERVICE = "alerting-pipeline"
"""The alarm's ``service``: its incident's subject is ``service/alerting-pipeline`` (what the metric looks for)."""


@dataclass(frozen=True, slots=True)
class WatchdogPolicy:
    """From the configuration (``incidents.watchdog``)."""

    enabled: bool = True
    matchers: tuple[Matcher, ...] = (parse('alertname="Watchdog"'),)
    missing_after: timedelta = timedelta(minutes=10)
    severity: Severity = Severity.SEV2


Verdict = Literal["raise", "clear"]


@dataclass(frozen=True, slots=True)
class Sightings:
    """The last two different arrivals of the watchdog (None: not seen yet), as the store keeps them."""

    previous: datetime | None = None
    last: datetime | None = None

    def seen(self, last_seen: datetime | None) -> Sightings:
        """After reading the store's last arrival again: a new one moves the last to ``previous``. Pure."""
        if last_seen is None or last_seen == self.last:
            return self
        return Sightings(self.last, last_seen)

    def gap(self) -> timedelta | None:
        """The time between the last two arrivals seen."""
        return None if self.previous is None or self.last is None else self.last - self.previous


def arrived(sightings: Sightings, updates: Iterable[tuple[Alert, AlertState]], policy: WatchdogPolicy) -> Sightings:
    """The sightings after these updates (in order, each with its alert's state after it): firing watchdogs. Pure."""
    for alert, state in updates:
        if alert.status == "firing" and match_all(policy.matchers, alert.labels):
            sightings = sightings.seen(state.last_seen)
    return sightings


def armed(sightings: Sightings, policy: WatchdogPolicy) -> bool:
    """Whether the watchdog arrives often enough to be missed: twice less than ``missing_after`` apart. Pure."""
    gap = sightings.gap()
    return policy.enabled and gap is not None and gap < policy.missing_after


def missing(sightings: Sightings, now: datetime, policy: WatchdogPolicy) -> bool:
    """Whether the watchdog is overdue: armed, and not seen for ``missing_after``. Pure."""
    last = sightings.last
    return armed(sightings, policy) and last is not None and now - last >= policy.missing_after


def verdict(
    sightings: Sightings, now: datetime, policy: WatchdogPolicy, raised: bool, heard_until: datetime | None = None
) -> Verdict | None:
    """What to do now: raise the alarm (once), clear it (the watchdog is back, or the check is off), or nothing.

    ``heard_until``: arrivals are known only before it (the oldest notification not processed yet; None:
    all are), so the alarm is missing by then, not by ``now``. A raised alarm clears only when the watchdog
    arrives after it was raised (``back``), or when the check is turned off. Pure.
    """
    if not raised:
        known = now if heard_until is None else min(now, heard_until)
        return "raise" if missing(sightings, known, policy) else None
    last = sightings.last
    back = last is not None and now - last < policy.missing_after
    return "clear" if back or not policy.enabled else None


def alarm_labels(policy: WatchdogPolicy) -> dict[str, str]:
    """The labels of the daemon's own alert: classified by its severity like any source's."""
    return {"alertname": ALARM_NAME, "service": ALARM_SERVICE, "severity": str(policy.severity)}


def alarm_title(last_seen: datetime) -> str:
    """The incident's title: what is wrong, since when."""
    return f"the alerting pipeline is down: no Watchdog since {last_seen.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
