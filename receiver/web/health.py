"""``/healthz`` (the process answers) and ``/readyz`` (it can take alerts now, and processing is not stuck).

Processing runs in the engine process; the web process keeps answering 200
whatever the engine does, so a stuck engine must show somewhere: the age of
the oldest accepted notification not processed yet, read from the store
against the clock, is both a gauge (``/metrics``) and, past
``engine.stall_after``, a reason for ``/readyz`` to answer 503.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Protocol

from aiohttp import web

from receiver.clock import Clock, utc_now
from receiver.store import HealthStore, InboxStore, StoreError
from receiver.web.errors import public_reason

log = logging.getLogger(__name__)
READY_TIMEOUT_SECONDS = 2.0


class ReadinessStore(HealthStore, InboxStore, Protocol):
    """What a readiness probe reads: a write now, and the oldest notification waiting for processing."""


def waited_seconds(oldest: datetime | None, now: datetime) -> float:
    """How long the oldest unprocessed notification has waited (0 when none waits, or it is from the future)."""
    return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())


async def healthz(_: web.Request) -> web.Response:
    """Alive: the event loop runs and answers."""
    return web.json_response({"status": "ok"})


class Readiness:
    """Ready: configuration loaded, the store writable right now, and processing not stuck."""

    def __init__(
        self, store: ReadinessStore, clock: Clock = utc_now, stall_after: timedelta = timedelta(minutes=2)
    ) -> None:
        """``stall_after``: how long a notification may wait for processing before processing counts as stuck."""
        self._store = store
        self._clock = clock
        self._stall_after = stall_after.total_seconds()

    async def handle(self, _: web.Request) -> web.Response:
        """Answer one readiness probe."""
        try:
            await asyncio.wait_for(self._store.ping(), READY_TIMEOUT_SECONDS)
            oldest = await asyncio.wait_for(self._store.oldest_unprocessed(), READY_TIMEOUT_SECONDS)
        except (StoreError, TimeoutError) as err:
            reason = public_reason(err) if str(err) else "the store did not answer in time"  # no paths: log only
            log.warning("not ready", extra={"error": str(err) or "timeout"})
            return web.json_response({"status": "unavailable", "config": "loaded", "store": reason}, status=503)
        waited = waited_seconds(oldest, self._clock())
        if waited > self._stall_after:
            stuck = (
                f"stuck: the oldest unprocessed notification has waited {waited:.0f}s"
                f" (engine.stall_after is {self._stall_after:g}s)"
            )
            body = {"status": "unavailable", "config": "loaded", "store": "writable", "processing": stuck}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ok", "config": "loaded", "store": "writable"})
