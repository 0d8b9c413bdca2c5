"""Ingestion: admission in front of the store, so overload is refused, not dropped.

Each webhook request hands its decoded notification to ``Ingestor.submit``
and waits until the store has committed it: the request is answered 200 only
after its alerts are durable. The store commits concurrent requests together
(group commit). At most ``max_pending`` notifications may wait for a commit;
beyond that ``submit`` refuses at once with ``Overloaded`` and the webhook
answers 503, so Alertmanager retries instead of being told that something it
will never see was accepted.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime

from receiver.alertmanager import Notification
from receiver.dedup import DedupPolicy, decide
from receiver.store import Accepted, Store


class Overloaded(RuntimeError):
    """Too many notifications wait for a commit, or ingestion is shutting down."""


class Ingestor:
    """Admits notifications to the store, a bounded number at a time."""

    def __init__(self, store: Store, *, policy: DedupPolicy, clock: Callable[[], datetime], max_pending: int) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._max_pending = max_pending
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @property
    def policy(self) -> DedupPolicy:
        """The dedup policy commits are decided with."""
        return self._policy

    @property
    def pending(self) -> int:
        """Notifications waiting for a commit."""
        return self._pending

    async def submit(self, notification: Notification) -> Accepted:
        """Wait until ``notification`` is committed. Raises Overloaded or StoreError."""
        if self._closing:
            raise Overloaded("shutting down")
        if self._pending >= self._max_pending:
            raise Overloaded(f"{self._pending} notifications are already waiting for commit")
        self._pending += 1
        self._idle.clear()
        try:
            decider = functools.partial(decide, now=self._clock(), policy=self._policy)
            [accepted] = await self._store.accept([notification], decider)
            return accepted
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def close(self) -> None:
        """Refuse new notifications and wait for those admitted to be committed."""
        self._closing = True
        await self._idle.wait()
