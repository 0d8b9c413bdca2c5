"""The daemon's own Prometheus metrics, on a registry that is passed in.

Every metric is created on the injected ``CollectorRegistry`` (tests make a
fresh one). Labels are bounded: results, statuses, outcomes, routes; never a
fingerprint or an alert name. Values that are state (alerts by status, the
commit queue's depth) are read at scrape time by ``refresh``.
"""

from __future__ import annotations

import collections
import platform
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from receiver import __version__
from receiver.alertmanager import Notification
from receiver.dedup import Decision, Outcome, Status

NOTIFICATION_RESULTS = (
    "accepted",
    "duplicate",
    "rejected_auth",
    "rejected_invalid",
    "rejected_too_large",
    "overloaded",
    "store_error",
)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Every metric the daemon exports, and the few ways they change."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.notifications = Counter(
            "receiver_notifications",
            "Webhook notifications by result: refused at the door, or processed (accepted: carried news).",
            ["result"],
            registry=registry,
        )
        self.alerts_received = Counter(
            "receiver_alerts_received", "Alert updates received, by their status.", ["status"], registry=registry
        )
        self.alert_updates = Counter(
            "receiver_alert_updates", "Alert updates by what dedup made of them.", ["outcome"], registry=registry
        )
        self.duplicates = Counter(
            "receiver_alert_duplicates", "Alert updates that were duplicates (HA peers, repeats).", registry=registry
        )
        self.flapping = Counter("receiver_alerts_flapping", "Times an alert started flapping.", registry=registry)
        self.expired = Counter(
            "receiver_alerts_expired", "Firing alerts expired after no update for too long.", registry=registry
        )
        self.alerts = Gauge(
            "receiver_alerts", "Alerts known, by status (read at scrape time).", ["status"], registry=registry
        )
        self.active_alerts = Gauge(
            "receiver_active_alerts", "Alerts firing now (read at scrape time).", registry=registry
        )
        self.queue_depth = Gauge(
            "receiver_ingest_queue_depth", "Notifications waiting for commit (read at scrape time).", registry=registry
        )
        self.backlog = Gauge(
            "receiver_inbox_backlog",
            "Accepted notifications waiting for processing (read at scrape time).",
            registry=registry,
        )
        self.request_duration = Histogram(
            "receiver_http_request_duration_seconds",
            "HTTP request duration, by route and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_duration = Histogram(
            "receiver_store_commit_duration_seconds",
            "Duration of one inbox commit (one group of webhook bodies).",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_batch = Histogram(
            "receiver_store_commit_batch_size",
            "Webhook bodies per inbox commit (group commit).",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        build = Info("receiver_build", "Version of the receiver and of Python.", registry=registry)
        build.info({"version": __version__, "python": platform.python_version()})
        # Children bound once: ``labels()`` costs a lock and a lookup per call.
        self._results = {r: self.notifications.labels(r) for r in NOTIFICATION_RESULTS}
        self._outcomes = {o: self.alert_updates.labels(o.value) for o in Outcome}
        self._received = {s: self.alerts_received.labels(s) for s in ("firing", "resolved")}
        self._routes: dict[tuple[str, str], Any] = {}

    def count_notification(self, result: str) -> None:
        """Count one webhook notification by its result (one of NOTIFICATION_RESULTS)."""
        self._results[result].inc()

    def observe_notification(self, notification: Notification, decisions: Sequence[Decision]) -> None:
        """Count the alerts of one accepted notification and what dedup made of them."""
        statuses = collections.Counter(a.status for a in notification.alerts)
        for status, n in statuses.items():
            self._received[status].inc(n)
        outcomes = collections.Counter(d.outcome for d in decisions)
        for outcome, n in outcomes.items():
            self._outcomes[outcome].inc(n)
        if outcomes[Outcome.DUPLICATE]:
            self.duplicates.inc(outcomes[Outcome.DUPLICATE])
        flapping = sum(1 for d in decisions if d.became_flapping)
        if flapping:
            self.flapping.inc(flapping)

    def observe_request(self, route: str, method: str, seconds: float) -> None:
        """Record one HTTP request's duration."""
        child = self._routes.get((route, method))
        if child is None:
            child = self._routes[(route, method)] = self.request_duration.labels(route, method)
        child.observe(seconds)

    def observe_commit(self, seconds: float, batch: int) -> None:
        """Record one store commit."""
        self.commit_duration.observe(seconds)
        self.commit_batch.observe(batch)

    def refresh(self, counts: Mapping[Status, int], queue_depth: int, backlog: int) -> None:
        """Set the state gauges from values read just now, at scrape time."""
        for status in Status:
            self.alerts.labels(status.value).set(counts.get(status, 0))
        self.active_alerts.set(counts.get(Status.FIRING, 0))
        self.queue_depth.set(queue_depth)
        self.backlog.set(backlog)
