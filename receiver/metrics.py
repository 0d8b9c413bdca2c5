"""The daemon's own Prometheus metrics, on a registry that is passed in.

Every metric is created on the injected ``CollectorRegistry`` (tests make a
fresh one). Labels are bounded: results, statuses, outcomes, routes, the
registered actions (``receiver/playbooks/actions/``); never a fingerprint or
an alert name. Values that are state (alerts by status, the
commit queue's depth) are read at scrape time by ``refresh``.
"""

from __future__ import annotations

import collections
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from receiver import __version__
from receiver.alerts.dedup import Decision, Outcome, Status
from receiver.alerts.wire import Notification
from receiver.evidence.records import Outcome as EvidenceOutcome
from receiver.incidents.book import Changes
from receiver.incidents.severity import Severity
from receiver.playbooks import actions as playbook_actions

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
_RESPONSE_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
"""Seconds: from half a minute to a day."""
_NOTIFY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
"""Seconds: from a fast send to half an hour of retries and rate limits."""
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class Tally:
    """What processing counted in one step: plain numbers, so they can cross from the engine process.

    The engine (in its own process, or inline in tests) counts into a Tally;
    the process that serves ``/metrics`` adds it to its counters.
    """

    notifications: collections.Counter[str] = field(default_factory=collections.Counter)
    received: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    flapping: int = 0
    expired: int = 0
    incidents: collections.Counter[str] = field(default_factory=collections.Counter)
    """Incidents opened, by their first severity."""
    suppressed: int = 0
    acknowledged: list[tuple[str, float]] = field(default_factory=list)
    """(severity, seconds from detection) per acknowledgement."""
    resolved: list[tuple[str, float]] = field(default_factory=list)
    """(severity, seconds from detection) per resolution."""
    runs: list[tuple[str, str]] = field(default_factory=list)
    """(playbook, result) per run that ended or was blocked, rejected, interrupted."""
    actions: list[tuple[str, str, float]] = field(default_factory=list)
    """(action, outcome, seconds) per Kubernetes action step."""
    blocks: list[str] = field(default_factory=list)
    """Guardrail reason per blocked run."""
    dead_letters: int = 0
    """Accepted notifications the engine could not decode (left in the inbox as received)."""
    evidence: list[tuple[str, float]] = field(default_factory=list)
    """(outcome, seconds) per evidence capture stored."""
    evidence_restarts: int = 0
    """Times the evidence worker failed and was started again."""
    sent: list[tuple[str, float]] = field(default_factory=list)
    """(channel, seconds from the row's writing to its delivery) per notification sent."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(channel, reason) per failed attempt."""
    notifier_restarts: int = 0
    """Times the notification sender failed and was started again."""
    interrupted: list[str] = field(default_factory=list)
    """Channel per notification marked interrupted (it may or may not have been delivered: not sent again)."""
    coverage_gaps: dict[str, float] | None = None
    """The coverage check's uncovered seconds ahead, by schedule (None: no check in this step); set, not added."""
    coverage_checked: float = 0.0
    """When that check ran, Unix seconds."""
    coverage_restarts: int = 0
    """Times the coverage check's loop failed and was started again."""
    steps: list[tuple[str, int]] = field(default_factory=list)
    """(policy, step number from 1) per escalation step fired."""
    nobody: list[str] = field(default_factory=list)
    """Policy per fired step that reached nobody (a schedule with nobody on call)."""
    acknowledgements: list[tuple[str, float, str, str]] = field(default_factory=list)
    """(severity, seconds from detection, path, person) per acknowledgement."""
    escalation_restarts: int = 0
    """Times the escalation loop failed and was started again."""

    @classmethod
    def of_incidents(cls, changes: Changes) -> Tally:
        """What incident changes count: opened, suppressed, times to acknowledge and resolve."""
        return cls(
            incidents=collections.Counter(str(s) for s in changes.opened),
            suppressed=changes.suppressed,
            acknowledged=[(str(s), t) for s, t in changes.acknowledged],
            resolved=[(str(s), t) for s, t in changes.resolved],
        )

    def count(self, notification: Notification | None, decisions: Sequence[Decision]) -> None:
        """Count one processed notification (None: its inbox entry could not be decoded)."""
        if notification is None:
            self.notifications["rejected_invalid"] += 1
            self.dead_letters += 1
            return
        self.notifications["accepted" if any(d.is_news for d in decisions) else "duplicate"] += 1
        self.received.update(a.status for a in notification.alerts)
        self.outcomes.update(d.outcome.value for d in decisions)
        self.flapping += sum(1 for d in decisions if d.became_flapping)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, read back by ``from_json``."""
        return {
            "notifications": dict(self.notifications),
            "received": dict(self.received),
            "outcomes": dict(self.outcomes),
            "flapping": self.flapping,
            "expired": self.expired,
            "incidents": dict(self.incidents),
            "suppressed": self.suppressed,
            "acknowledged": self.acknowledged,
            "resolved": self.resolved,
            "runs": self.runs,
            "actions": self.actions,
            "blocks": self.blocks,
            "dead_letters": self.dead_letters,
            "evidence": self.evidence,
            "evidence_restarts": self.evidence_restarts,
            "sent": self.sent,
            "failed": self.failed,
            "notifier_restarts": self.notifier_restarts,
            "interrupted": self.interrupted,
            "coverage_gaps": self.coverage_gaps,
            "coverage_checked": self.coverage_checked,
            "coverage_restarts": self.coverage_restarts,
            "steps": self.steps,
            "nobody": self.nobody,
            "acknowledgements": self.acknowledgements,
            "escalation_restarts": self.escalation_restarts,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Tally:
        """The Tally ``to_json`` described (incident counts may be missing: an engine from before them)."""
        return cls(
            notifications=collections.Counter(raw["notifications"]),
            received=collections.Counter(raw["received"]),
            outcomes=collections.Counter(raw["outcomes"]),
            flapping=int(raw["flapping"]),
            expired=int(raw["expired"]),
            incidents=collections.Counter(raw.get("incidents", {})),
            suppressed=int(raw.get("suppressed", 0)),
            acknowledged=[(str(s), float(t)) for s, t in raw.get("acknowledged", [])],
            resolved=[(str(s), float(t)) for s, t in raw.get("resolved", [])],
            runs=[(str(p), str(r)) for p, r in raw.get("runs", [])],
            actions=[(str(a), str(o), float(t)) for a, o, t in raw.get("actions", [])],
            blocks=[str(b) for b in raw.get("blocks", [])],
            dead_letters=int(raw.get("dead_letters", 0)),
            evidence=[(str(o), float(t)) for o, t in raw.get("evidence", [])],
            evidence_restarts=int(raw.get("evidence_restarts", 0)),
            sent=[(str(c), float(t)) for c, t in raw.get("sent", [])],
            failed=[(str(c), str(r)) for c, r in raw.get("failed", [])],
            notifier_restarts=int(raw.get("notifier_restarts", 0)),
            interrupted=[str(c) for c in raw.get("interrupted", [])],
            coverage_gaps=_gaps(raw.get("coverage_gaps")),
            coverage_checked=float(raw.get("coverage_checked", 0.0)),
            coverage_restarts=int(raw.get("coverage_restarts", 0)),
            steps=[(str(p), int(n)) for p, n in raw.get("steps", [])],
            nobody=[str(p) for p in raw.get("nobody", [])],
            acknowledgements=[(str(s), float(t), str(p), str(b)) for s, t, p, b in raw.get("acknowledgements", [])],
            escalation_restarts=int(raw.get("escalation_restarts", 0)),
        )


def _gaps(raw: Mapping[str, Any] | None) -> dict[str, float] | None:
    return None if raw is None else {str(s): float(v) for s, v in raw.items()}


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
        self.incidents = Counter(
            "receiver_incidents", "Incidents opened, by their first severity.", ["severity"], registry=registry
        )
        self.open_incidents = Gauge(
            "receiver_open_incidents",
            "Incidents not resolved, by severity (read at scrape time).",
            ["severity"],
            registry=registry,
        )
        self.suppressed = Counter(
            "receiver_alerts_suppressed",
            "Firing alerts attached to a root cause's incident as symptoms (no incident, playbook or notification).",
            registry=registry,
        )
        self.time_to_acknowledge = Histogram(
            "receiver_incident_time_to_acknowledge_seconds",
            "Seconds from detection to acknowledgement, by severity (MTTA: sum / count).",
            ["severity"],
            buckets=_RESPONSE_BUCKETS,
            registry=registry,
        )
        self.time_to_resolve = Histogram(
            "receiver_incident_time_to_resolve_seconds",
            "Seconds from detection to resolution, by severity (MTTR: sum / count).",
            ["severity"],
            buckets=_RESPONSE_BUCKETS,
            registry=registry,
        )
        self.runs = Counter(
            "receiver_playbook_runs",
            "Playbook runs by playbook and result (succeeded, failed, blocked, rejected, interrupted).",
            ["playbook", "result"],
            registry=registry,
        )
        self.actions = Counter(
            "receiver_playbook_actions",
            "Kubernetes actions of playbook steps, by action and outcome.",
            ["action", "result"],
            registry=registry,
        )
        self.action_duration = Histogram(
            "receiver_playbook_action_duration_seconds",
            "Duration of Kubernetes actions of playbook steps, retries included.",
            ["action"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.guardrail_blocks = Counter(
            "receiver_guardrail_blocks",
            "Runs a guardrail refused to start, by reason.",
            ["reason"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "receiver_dead_letters",
            "Accepted notifications the engine could not process (kept in the inbox as received; see the log).",
            registry=registry,
        )
        self.circuit_open = Gauge(
            "receiver_playbook_circuit_open",
            "1 while a playbook's circuit breaker is open (too many failed runs in a row), by playbook.",
            ["playbook"],
            registry=registry,
        )
        self.evidence_captures = Counter(
            "receiver_evidence_captures",
            "Evidence captures stored, by outcome (captured, partial, failed, timeout, no_credentials, nothing).",
            ["outcome"],
            registry=registry,
        )
        self.evidence_duration = Histogram(
            "receiver_evidence_capture_duration_seconds",
            "Duration of one evidence capture (every read of one alert's evidence).",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.evidence_restarts = Counter(
            "receiver_evidence_worker_restarts",
            "Times the evidence worker failed and was started again (its log says why).",
            registry=registry,
        )
        self.notifications_sent = Counter(
            "receiver_notifications_sent",
            "Notifications delivered, by channel (as named in notify.channels).",
            ["channel"],
            registry=registry,
        )
        self.notifications_failed = Counter(
            "receiver_notifications_failed",
            "Failed delivery attempts, by channel and reason (client_error, server_error, auth_error,"
            " rate_limited, timeout, other; a temporary one is tried again).",
            ["channel", "reason"],
            registry=registry,
        )
        self.notification_latency = Histogram(
            "receiver_notification_latency_seconds",
            "From a notification's writing (with the change that caused it) to its delivery, by channel.",
            ["channel"],
            buckets=_NOTIFY_BUCKETS,
            registry=registry,
        )
        self.escalation_steps = Counter(
            "receiver_escalation_steps",
            "Escalation steps fired, by policy and step (from 1): people paged because nobody acknowledged.",
            ["policy", "step"],
            registry=registry,
        )
        self.escalation_nobody = Counter(
            "receiver_escalation_nobody_on_call",
            "Escalation steps that reached nobody (a schedule with nobody on call, a target not configured), by"
            " policy: an incident someone should have been paged for.",
            ["policy"],
            registry=registry,
        )
        self.escalations_active = Gauge(
            "receiver_escalations_active",
            "Incidents escalating now: not acknowledged, a step or its wait still to come (read at scrape time).",
            registry=registry,
        )
        self.escalation_restarts = Counter(
            "receiver_escalation_restarts",
            "Times the escalation loop failed and was started again (a store fault or a bug: see the error log).",
            registry=registry,
        )
        self.acknowledged_by = Histogram(
            "receiver_acknowledge_seconds",
            "Seconds from detection to acknowledgement, by severity, path (link, slack, pagerduty, api) and the"
            " configured person who acknowledged (other: anyone else).",
            ["severity", "path", "person"],
            buckets=_RESPONSE_BUCKETS,
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "receiver_outbox_pending",
            "Notifications waiting to be sent or being sent (read at scrape time).",
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            "receiver_outbox_oldest_pending_age_seconds",
            "How long the oldest notification not sent yet has waited; 0 when none waits (read at scrape time).",
            registry=registry,
        )
        self.notifications_interrupted = Counter(
            "receiver_notifications_interrupted",
            "Notifications that may or may not have been delivered (an engine stopped while sending an email, an"
            " attempt with no answer) and are not sent again, by channel: look at them (state interrupted).",
            ["channel"],
            registry=registry,
        )
        self.notifier_restarts = Counter(
            "receiver_notifier_restarts",
            "Times the notification sender failed and was started again (its log says why).",
            registry=registry,
        )
        self._oncall(registry)
        self.engine_restarts = Counter(
            "receiver_engine_restarts",
            "Times the engine process ended unexpectedly and was started again.",
            registry=registry,
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
        self.oldest_unprocessed_age = Gauge(
            "receiver_inbox_oldest_unprocessed_age_seconds",
            "How long the oldest accepted notification not processed yet has waited; 0 when none waits"
            " (read at scrape time).",
            registry=registry,
        )
        self.watchdog_last_seen = Gauge(
            "receiver_watchdog_last_seen_timestamp_seconds",
            "When the watchdog alert (incidents.watchdog.matchers) last arrived, Unix seconds; 0: never"
            " (read at scrape time).",
            registry=registry,
        )
        self.watchdog_missing = Gauge(
            "receiver_watchdog_missing",
            "1 while the daemon's own incident says the watchdog alert has not arrived for"
            " incidents.watchdog.missing_after (the alerting pipeline is down), else 0 (read at scrape time).",
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
        # One series per action that acts on the cluster, from the registry of actions, there from the start.
        self._action_durations = {a: self.action_duration.labels(a) for a in sorted(playbook_actions.KUBERNETES)}
        for outcome in EvidenceOutcome:  # every outcome's series there from the start (the chart's rules read them)
            self.evidence_captures.labels(outcome.value)

    def count_notification(self, result: str) -> None:
        """Count one webhook notification by its result (one of NOTIFICATION_RESULTS)."""
        self._results[result].inc()

    def add(self, tally: Tally) -> None:
        """Add what processing counted (in this process or in the engine's)."""
        for result, n in tally.notifications.items():
            self._results[result].inc(n)
        for status, n in tally.received.items():
            self._received[status].inc(n)
        for outcome, n in tally.outcomes.items():
            self._outcomes[Outcome(outcome)].inc(n)
        if tally.outcomes[Outcome.DUPLICATE.value]:
            self.duplicates.inc(tally.outcomes[Outcome.DUPLICATE.value])
        if tally.flapping:
            self.flapping.inc(tally.flapping)
        if tally.expired:
            self.expired.inc(tally.expired)
        for severity, n in tally.incidents.items():
            self.incidents.labels(severity).inc(n)
        if tally.suppressed:
            self.suppressed.inc(tally.suppressed)
        for severity, seconds in tally.acknowledged:
            self.time_to_acknowledge.labels(severity).observe(seconds)
        for severity, seconds in tally.resolved:
            self.time_to_resolve.labels(severity).observe(seconds)
        for playbook, result in tally.runs:
            self.runs.labels(playbook, result).inc()
        for action, result, seconds in tally.actions:
            self.actions.labels(action, result).inc()
            (self._action_durations.get(action) or self.action_duration.labels(action)).observe(seconds)
        for reason in tally.blocks:
            self.guardrail_blocks.labels(reason).inc()
        if tally.dead_letters:
            self.dead_letters.inc(tally.dead_letters)
        for outcome, seconds in tally.evidence:
            self.evidence_captures.labels(outcome).inc()
            self.evidence_duration.observe(seconds)
        if tally.evidence_restarts:
            self.evidence_restarts.inc(tally.evidence_restarts)
        self._add_notifications(tally)
        self._add_coverage(tally)

    def _add_notifications(self, tally: Tally) -> None:
        for channel, seconds in tally.sent:
            self.notifications_sent.labels(channel).inc()
            self.notification_latency.labels(channel).observe(seconds)
        for channel, reason in tally.failed:
            self.notifications_failed.labels(channel, reason).inc()
        for channel in tally.interrupted:
            self.notifications_interrupted.labels(channel).inc()
        if tally.notifier_restarts:
            self.notifier_restarts.inc(tally.notifier_restarts)
        self._add_escalations(tally)

    def _add_escalations(self, tally: Tally) -> None:
        for policy, step in tally.steps:
            self.escalation_steps.labels(policy, str(step)).inc()
        for policy in tally.nobody:
            self.escalation_nobody.labels(policy).inc()
        for severity, seconds, path, person in tally.acknowledgements:
            self.acknowledged_by.labels(severity, path, person).observe(seconds)
        if tally.escalation_restarts:
            self.escalation_restarts.inc(tally.escalation_restarts)

    def _oncall(self, registry: CollectorRegistry) -> None:
        self.on_call = Gauge(
            "receiver_oncall_on_call",
            "1 for whoever is on call now, by schedule and person (read at scrape time).",
            ["schedule", "person"],
            registry=registry,
        )
        self.oncall_nobody = Gauge(
            "receiver_oncall_nobody",
            "1 while nobody is on call in a schedule, else 0 (read at scrape time).",
            ["schedule"],
            registry=registry,
        )
        self.coverage_gap = Gauge(
            "receiver_oncall_coverage_gap_seconds",
            "Seconds in the coverage check's window ahead (oncall.coverage.weeks) with nobody on call, by schedule.",
            ["schedule"],
            registry=registry,
        )
        self.coverage_checked = Gauge(
            "receiver_oncall_coverage_checked_timestamp_seconds",
            "When the coverage check last ran, Unix seconds; 0 before it has.",
            registry=registry,
        )
        self.coverage_restarts = Counter(
            "receiver_oncall_coverage_restarts",
            "Times the coverage check's loop failed and was started again (its log says why).",
            registry=registry,
        )

    def _add_coverage(self, tally: Tally) -> None:
        if tally.coverage_gaps is not None:
            self.coverage_gap.clear()  # a schedule that is gone leaves no series behind
            for schedule, seconds in tally.coverage_gaps.items():
                self.coverage_gap.labels(schedule).set(seconds)
            self.coverage_checked.set(tally.coverage_checked)
        if tally.coverage_restarts:
            self.coverage_restarts.inc(tally.coverage_restarts)

    def on_call_now(self, people: Mapping[str, str | None]) -> None:
        """Set who is on call now, by schedule (None: nobody), read at scrape time."""
        self.on_call.clear()  # the previous person's series ends at the handoff
        for schedule, person in people.items():
            if person is not None:
                self.on_call.labels(schedule, person).set(1)
            self.oncall_nobody.labels(schedule).set(int(person is None))

    def policies(self, names: Sequence[str]) -> None:
        """Make every escalation policy's series exist from the start (the chart's alerts read them)."""
        for name in names:
            self.escalation_nobody.labels(name)

    def channels(self, names: Sequence[str]) -> None:
        """Make every channel's series exist from the start (the chart's alerts read them)."""
        for name in names:
            self.notifications_sent.labels(name)
            self.notifications_interrupted.labels(name)
            for reason in ("client_error", "server_error", "auth_error", "rate_limited", "timeout", "other"):
                self.notifications_failed.labels(name, reason)

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

    def refresh(
        self,
        counts: Mapping[Status, int],
        queue_depth: int,
        backlog: int,
        open_incidents: Mapping[Severity, int] | None = None,
        breakers: Mapping[str, bool] | None = None,
    ) -> None:
        """Set the state gauges from values read just now, at scrape time."""
        for playbook, is_open in (breakers or {}).items():
            self.circuit_open.labels(playbook).set(int(is_open))
        for severity in Severity:
            self.open_incidents.labels(str(severity)).set((open_incidents or {}).get(severity, 0))
        for status in Status:
            self.alerts.labels(status.value).set(counts.get(status, 0))
        self.active_alerts.set(counts.get(Status.FIRING, 0))
        self.queue_depth.set(queue_depth)
        self.backlog.set(backlog)
