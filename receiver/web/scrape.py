"""``GET /metrics``: the Prometheus exposition, with state read at scrape time."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from receiver.metrics import Metrics
from receiver.store import Store, StoreError


class Scrape:
    """Serves the metrics registry."""

    def __init__(self, metrics: Metrics, store: Store, queue_depth: Callable[[], int]) -> None:
        self._metrics = metrics
        self._store = store
        self._queue_depth = queue_depth

    async def handle(self, _: web.Request) -> web.Response:
        """Refresh the state gauges, then render every metric."""
        try:
            counts = await self._store.count_alerts()
            backlog = await self._store.backlog()
            incidents = await self._store.count_open_incidents()
        except StoreError:  # the counters still tell the story; readiness reports the store
            counts, backlog, incidents = {}, 0, {}
        self._metrics.refresh(counts, self._queue_depth(), backlog, incidents)
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
