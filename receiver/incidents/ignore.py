"""Ignored alerts: stored and listed like any other, but never part of an incident.

Some alerts fire by design and mean nothing is wrong: kube-prometheus's
``Watchdog`` (always firing, to prove the pipeline works), ``InfoInhibitor``
(fires only to inhibit info alerts) and anything of ``severity="none"``.
As members of incidents they would open an incident that never closes and
count as affected services. The alert store keeps them (deduped, in the
alerts API: the watchdog's last arrival is read from there); the engine does
not give them to the incident book or the playbooks. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from receiver.alerts.matchers import Matcher, match_all, parse

Matchers = tuple[Matcher, ...]
"""Matchers that must all hold (one entry of the ignore list)."""
DEFAULT_IGNORE: tuple[Matchers, ...] = (
    (parse('alertname="Watchdog"'),),
    (parse('alertname="InfoInhibitor"'),),
    (parse('severity="none"'),),
)


def ignored(labels: Mapping[str, str], ignore: Sequence[Matchers]) -> bool:
    """Whether an alert with these labels matches one entry of the ignore list (every matcher of it). Pure."""
    return any(match_all(entry, labels) for entry in ignore)
