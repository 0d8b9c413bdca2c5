"""``GET /metrics``: the Prometheus exposition, with state read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from receiver.clock import Clock, utc_now
from receiver.metrics import Metrics
from receiver.playbooks.guardrails import Limits, breaker_opens
from receiver.store import AlertStore, InboxStore, IncidentStore, RunStore, StoreError
from receiver.web.health import waited_seconds


class ScrapeStore(InboxStore, AlertStore, IncidentStore, RunStore, Protocol):
    """What a scrape reads: the backlog, alert and open incident counts, the circuit breakers."""


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
    ) -> None:
        """``playbooks``, ``limits``: whose circuit breakers to report, and how many failures open one;
        ``clock``: what the age of the oldest unprocessed notification is measured against."""
        self._metrics = metrics
        self._store = store
        self._queue_depth = queue_depth
        self._playbooks = tuple(playbooks)
        self._limits = limits or Limits()
        self._clock = clock

    async def handle(self, _: web.Request) -> web.Response:
        """Refresh the state gauges, then render every metric."""
        try:
            counts = await self._store.count_alerts()
            backlog = await self._store.backlog()
            incidents = await self._store.count_open_incidents()
            breakers = {p: await self._breaker_open(p) for p in self._playbooks}
            oldest = await self._store.oldest_unprocessed()
        except StoreError:  # the counters still tell the story; readiness reports the store
            counts, backlog, incidents, breakers, oldest = {}, 0, {}, {}, None
        self._metrics.refresh(counts, self._queue_depth(), backlog, incidents, breakers)
        self._metrics.oldest_unprocessed_age.set(waited_seconds(oldest, self._clock()))
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _breaker_open(self, playbook: str) -> bool:
        failures = await self._store.failures_in_a_row(playbook, self._limits.breaker_failures)
        return breaker_opens(failures, self._limits)
