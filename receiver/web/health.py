"""``/healthz`` (the process answers) and ``/readyz`` (it can take alerts now)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from receiver.store import HealthStore, StoreError

READY_TIMEOUT_SECONDS = 2.0


async def healthz(_: web.Request) -> web.Response:
    """Alive: the event loop runs and answers."""
    return web.json_response({"status": "ok"})


class Readiness:
    """Ready: configuration loaded and the store writable right now."""

    def __init__(self, store: HealthStore) -> None:
        self._store = store

    async def handle(self, _: web.Request) -> web.Response:
        """Answer one readiness probe."""
        try:
            await asyncio.wait_for(self._store.ping(), READY_TIMEOUT_SECONDS)
        except (StoreError, TimeoutError) as err:
            reason = str(err) or "the store did not answer in time"
            return web.json_response({"status": "unavailable", "config": "loaded", "store": reason}, status=503)
        return web.json_response({"status": "ok", "config": "loaded", "store": "writable"})
