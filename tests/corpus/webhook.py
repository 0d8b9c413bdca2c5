"""Alertmanager 0.25's webhook body for a group of corpus alerts, as Alertmanager builds it.

Alertmanager sends one body per aggregation group: its receiver, the group key (the route's key and the
group labels), the group labels, the labels and annotations all alerts share, its external URL, and the
alerts sorted as its dispatcher sorts them (by job, then instance, then label set), each with the
fingerprint of its label set. A firing alert's endsAt is Go's zero time. Times are given by the caller:
nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cmp_to_key
from typing import Any

from receiver.alerts.wire import fingerprint
from tests.corpus.entries import CorpusAlert, document

GO_ZERO_TIME = "0001-01-01T00:00:00Z"
RECEIVER = "receiver"
GROUP_BY = ("namespace",)
"""kube-prometheus-stack's default route groups by namespace (tests/corpus/alertmanager.yml)."""
WATCHDOG_ROUTE = '{}/{alertname="Watchdog"}'


def payload(
    alerts: Sequence[CorpusAlert],
    status: str = "firing",
    *,
    starts_at: datetime,
    ends_at: datetime | None = None,
    group_labels: Mapping[str, str] | None = None,
    resolved: Collection[CorpusAlert] = (),
    receiver: str = RECEIVER,
) -> dict[str, Any]:
    """The webhook body Alertmanager sends for ``alerts`` as one group. Raises ValueError.

    ``status`` applies to every alert, except those also listed in ``resolved`` (resolved within a firing
    group). Resolved alerts end at ``ends_at``, which they need. ``group_labels`` defaults to what the
    default route yields: the alerts' shared ``namespace``, or none (Watchdog, node alerts' exporter
    namespace aside, every alert carries one); alerts of different namespaces are never grouped.
    """
    if not alerts:
        raise ValueError("a notification carries at least one alert")
    if status not in ("firing", "resolved"):
        raise ValueError(f"status must be 'firing' or 'resolved', not {status!r}")
    resolved_ids = {id(a) for a in resolved}
    statuses = ["resolved" if status == "resolved" or id(a) in resolved_ids else "firing" for a in alerts]
    if "resolved" in statuses and ends_at is None:
        raise ValueError("resolved alerts need ends_at")
    if ends_at is not None and ends_at < starts_at:
        raise ValueError("ends_at must not be before starts_at")
    groups = dict(group_labels) if group_labels is not None else _default_group_labels(alerts)
    items = sorted(
        (_alert(a, s, starts_at, ends_at) for a, s in zip(alerts, statuses, strict=True)),
        key=cmp_to_key(_dispatch_order),
    )
    return {
        "receiver": receiver,
        "status": "firing" if "firing" in statuses else "resolved",
        "alerts": items,
        "groupLabels": groups,
        "commonLabels": _common(a["labels"] for a in items),
        "commonAnnotations": _common(a["annotations"] for a in items),
        "externalURL": document()["alertmanager_url"],
        "version": "4",
        "groupKey": f"{_route_key(alerts)}:{_label_set(groups)}",
        "truncatedAlerts": 0,
    }


def webhook_alert(
    a: CorpusAlert, status: str = "firing", *, starts_at: datetime, ends_at: datetime | None = None
) -> dict[str, Any]:
    """One alert of a webhook body (what ``payload`` puts in ``alerts``), for helpers that wrap alerts themselves."""
    if status not in ("firing", "resolved"):
        raise ValueError(f"status must be 'firing' or 'resolved', not {status!r}")
    if status == "resolved" and ends_at is None:
        raise ValueError("resolved alerts need ends_at")
    return _alert(a, status, starts_at, ends_at)


def prometheus_alert(a: CorpusAlert, *, starts_at: datetime, ends_at: datetime | None = None) -> dict[str, Any]:
    """The alert as Prometheus posts it to Alertmanager (``POST /api/v2/alerts``), to push into a real one."""
    posted: dict[str, Any] = {
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": rfc3339(starts_at),
        "generatorURL": a.generator_url,
    }
    if ends_at is not None:
        posted["endsAt"] = rfc3339(ends_at)
    return posted


def rfc3339(moment: datetime) -> str:
    """``moment`` as Go's time.Time marshals it (RFC 3339, fraction only when there is one), in UTC."""
    if moment.tzinfo is None:
        raise ValueError("times must carry a timezone")
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _alert(a: CorpusAlert, status: str, starts_at: datetime, ends_at: datetime | None) -> dict[str, Any]:
    return {
        "status": status,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at) if status == "resolved" and ends_at is not None else GO_ZERO_TIME,
        "generatorURL": a.generator_url,
        "fingerprint": fingerprint(a.labels),
    }


def _default_group_labels(alerts: Sequence[CorpusAlert]) -> dict[str, str]:
    groups = []
    for a in alerts:
        groups.append({k: a.labels[k] for k in GROUP_BY if k in a.labels})
    if any(g != groups[0] for g in groups):
        raise ValueError(f"alerts with different {GROUP_BY} are in different groups: {groups}")
    return groups[0]


def _route_key(alerts: Sequence[CorpusAlert]) -> str:
    watchdog = [a.labels.get("alertname") == "Watchdog" for a in alerts]
    if all(watchdog):
        return WATCHDOG_ROUTE
    if any(watchdog):
        raise ValueError("Watchdog has a route of its own: it is never grouped with other alerts")
    return "{}"


def _label_set(labels: Mapping[str, str]) -> str:
    """Prometheus' LabelSet.String(): sorted, values quoted as Go's strconv.Quote does for plain text."""
    inner = ", ".join(f"{k}={_go_quote(labels[k])}" for k in sorted(labels))
    return "{" + inner + "}"


def _go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _common(sets: Iterable[Mapping[str, str]]) -> dict[str, str]:
    it = iter(sets)
    common = dict(next(it))
    for other in it:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def _dispatch_order(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """Alertmanager's alertsSlice order: job, then instance (an alert without one last), then label set."""
    la, lb = a["labels"], b["labels"]
    for key in ("job", "instance"):
        if key not in la and key not in lb:
            continue
        if key not in la:
            return 1
        if key not in lb:
            return -1
        if la[key] != lb[key]:
            return -1 if la[key] < lb[key] else 1
    return -1 if _before(la, lb) else (1 if _before(lb, la) else 0)


def _before(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """prometheus/common's LabelSet.Before."""
    if len(a) != len(b):
        return len(a) < len(b)
    for name in sorted({*a, *b}):
        if name not in a:
            return True
        if name not in b:
            return False
        if a[name] != b[name]:
            return a[name] < b[name]
    return False
