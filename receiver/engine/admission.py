"""Ingestion: admission in front of the store, so overload is refused, not dropped.

Each webhook request hands its validated body to ``Ingestor.submit`` and
waits until the store has appended it to the inbox durably: the request is
answered 200 only then. The store commits concurrent requests together
(group commit). ``submit`` refuses at once with ``Overloaded`` when too many
requests already wait for a commit, or when the processor has fallen too far
behind; the webhook then answers 503, so Alertmanager retries instead of
being told that something it will never see was accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from receiver.alerts.wire import Valid
from receiver.store import InboxEntry, InboxStore


class Consumer(Protocol):
    """Whatever processes the inbox: told of each committed entry, it says how far it got."""

    @property
    def cursor(self) -> int:
        """The last inbox seq processed."""
        ...

    def offer(self, entry: InboxEntry, valid: Valid) -> None:
        """``entry`` is committed to the inbox; ``valid`` is what its body validated as."""
        ...


class Overloaded(RuntimeError):
    """Too much waits already (commits or processing), or ingestion is shutting down."""


class Ingestor:
    """Admits webhook bodies to the store, a bounded number at a time."""

    def __init__(
        self,
        store: InboxStore,
        consumer: Consumer,
        *,
        clock: Callable[[], datetime],
        max_pending: int,
        max_backlog: int,
    ) -> None:
        self._store = store
        self._consumer = consumer
        self._clock = clock
        self._max_pending = max_pending
        self._max_backlog = max_backlog
        self._pending = 0
        self._last_seq = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @property
    def pending(self) -> int:
        """Bodies waiting for their commit."""
        return self._pending

    @property
    def backlog(self) -> int:
        """Accepted bodies the processor has not reached yet (as far as this process knows)."""
        return max(0, self._last_seq - self._consumer.cursor)

    async def submit(self, body: bytes, valid: Valid) -> int:
        """Wait until ``body`` is durably in the inbox; its seq. Raises Overloaded or StoreError.

        ``valid`` is what ``body`` validated as: an inline processor takes it as it is.
        """
        self._admit()
        self._pending += 1
        self._idle.clear()
        received_at = self._clock()
        try:
            seq = await self._store.accept(body, received_at)
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()
        self._last_seq = max(self._last_seq, seq)
        self._consumer.offer(InboxEntry(seq, received_at, body), valid)
        return seq

    async def close(self) -> None:
        """Refuse new bodies and wait for those admitted to be committed."""
        self._closing = True
        await self._idle.wait()

    def _admit(self) -> None:
        if self._closing:
            raise Overloaded("shutting down")
        if self._pending >= self._max_pending:
            raise Overloaded(f"{self._pending} notifications are already waiting for commit")
        if self.backlog >= self._max_backlog:
            raise Overloaded(f"{self.backlog} accepted notifications wait for processing")
