"""``GET /metrics``: the Prometheus exposition, with state read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from receiver.clock import Clock, utc_now
from receiver.incidents.book import IncidentPolicy
from receiver.incidents.correlation import service_of
from receiver.incidents.lifecycle import IncidentStatus
from receiver.incidents.watchdog import alarm_labels
from receiver.metrics import Metrics
from receiver.oncall.schedules import Schedule, who
from receiver.playbooks.guardrails import Limits, breaker_opens
from receiver.store import (
    AlertStore,
    InboxStore,
    IncidentQuery,
    IncidentStore,
    OutboxStore,
    RunStore,
    StoreError,
    watchdog_last_seen,
)
from receiver.web.health import waited_seconds


class ScrapeStore(InboxStore, AlertStore, IncidentStore, RunStore, OutboxStore, Protocol):
    """What a scrape reads: the backlog, alert and open incident counts, the circuit breakers, the outbox."""


class Scrape:
    """Serves the metrics registry."""

    def __init__(
        self,
        metrics: Metrics,
        store: ScrapeStore,
        queue_depth: Callable[[], int],
        playbooks: Sequence[str] = (),
        limits: Limits | None = None,
        clock: Clock = utc_now,
        incidents: IncidentPolicy | None = None,
        schedules: Mapping[str, Schedule] | None = None,
    ) -> None:
        """``playbooks``, ``limits``: whose circuit breakers to report, and how many failures open one;
        ``clock``: what the age of the oldest unprocessed notification (and the watchdog) is measured against;
        ``incidents``: whose dead man's switch to report (None: the defaults);
        ``schedules``: whose person on call now to report, by name."""
        self._metrics = metrics
        self._store = store
        self._queue_depth = queue_depth
        self._playbooks = tuple(playbooks)
        self._limits = limits or Limits()
        self._clock = clock
        self._schedules = dict(schedules or {})
        policy = incidents or IncidentPolicy()
        self._watchdog = policy.watchdog
        self._alarm = IncidentQuery(
            statuses=frozenset(IncidentStatus) - {IncidentStatus.RESOLVED},
            service=service_of(alarm_labels(policy.watchdog), policy.correlation),
            limit=1,
        )
        """The daemon's own incident while the watchdog is missing: its alarm is its service."""

    async def handle(self, _: web.Request) -> web.Response:
        """Refresh the state gauges, then render every metric."""
        try:
            counts = await self._store.count_alerts()
            backlog = await self._store.backlog()
            incidents = await self._store.count_open_incidents()
            breakers = {p: await self._breaker_open(p) for p in self._playbooks}
            oldest = await self._store.oldest_unprocessed()
            watchdog = await watchdog_last_seen(self._store, self._watchdog.matchers)
            alarm = await self._store.incidents(self._alarm)
            outbox, unsent = await self._store.outbox_backlog()
            escalating = await self._store.escalations_active()
        except StoreError:  # the counters still tell the story; readiness reports the store
            counts, backlog, incidents, breakers, oldest, watchdog, alarm = {}, 0, {}, {}, None, None, []
            outbox, unsent, escalating = 0, None, 0
        now = self._clock()
        self._metrics.refresh(counts, self._queue_depth(), backlog, incidents, breakers)
        self._metrics.oldest_unprocessed_age.set(waited_seconds(oldest, now))
        self._metrics.watchdog_last_seen.set(watchdog.timestamp() if watchdog else 0)
        self._metrics.watchdog_missing.set(int(any(i.firing for i in alarm)))
        self._metrics.outbox_pending.set(outbox)
        self._metrics.outbox_oldest_age.set(waited_seconds(unsent, now))
        self._metrics.on_call_now({name: who(schedule, now) for name, schedule in self._schedules.items()})
        self._metrics.escalations_active.set(escalating)
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _breaker_open(self, playbook: str) -> bool:
        failures = await self._store.failures_in_a_row(playbook, self._limits.breaker_failures)
        return breaker_opens(failures, self._limits)
