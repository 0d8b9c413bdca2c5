"""Ingestion: a bounded queue in front of the store, committed in batches.

Each webhook request hands its decoded notification to ``Ingestor.submit``
and waits until the batch holding it is committed: the request is answered
200 only after its alerts are durable. Requests that arrive while a commit is
running wait in the queue and share the next commit (group commit), so one
fsync serves many requests. When the queue is full, ``submit`` refuses at
once with ``Overloaded`` and the webhook answers 503, so Alertmanager retries
instead of being told that something it will never see was accepted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from receiver.alertmanager import Notification
from receiver.dedup import DedupPolicy, decide
from receiver.metrics import Metrics
from receiver.store import Accepted, Store, StoreError

log = logging.getLogger(__name__)


class Overloaded(RuntimeError):
    """The commit queue is full, or ingestion is shutting down: retry later."""


@dataclass
class _Pending:
    notification: Notification
    done: asyncio.Future[Accepted]


class Ingestor:
    """Commits submitted notifications to the store, many per transaction."""

    def __init__(
        self,
        store: Store,
        *,
        policy: DedupPolicy,
        clock: Callable[[], datetime],
        metrics: Metrics,
        max_pending: int,
        max_batch: int,
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(max_pending)
        self._closing = False

    @property
    def policy(self) -> DedupPolicy:
        """The dedup policy commits are decided with."""
        return self._policy

    @property
    def pending(self) -> int:
        """Notifications waiting for a commit."""
        return self._queue.qsize()

    async def submit(self, notification: Notification) -> Accepted:
        """Wait until ``notification`` is committed. Raises Overloaded or StoreError."""
        if self._closing:
            raise Overloaded("shutting down")
        pending = _Pending(notification, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise Overloaded(f"{self._queue.maxsize} notifications are already waiting for commit") from None
        return await pending.done

    async def run(self) -> None:
        """Commit batches until ``close`` is called and the queue is empty."""
        while True:
            batch = await self._next_batch()
            if not batch:
                return
            await self._commit(batch)

    async def close(self) -> None:
        """Refuse new work; ``run`` ends once what was queued is committed."""
        self._closing = True
        await self._queue.join()
        await self._queue.put(None)

    async def _next_batch(self) -> list[_Pending]:
        first = await self._queue.get()
        if first is None:
            return []
        batch = [first]
        while len(batch) < self._max_batch and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:  # only put once the queue is drained; keep it for the next turn
                self._queue.task_done()
                self._queue.put_nowait(None)
                break
            batch.append(item)
        return batch

    async def _commit(self, batch: list[_Pending]) -> None:
        now = self._clock()
        started = time.perf_counter()
        try:
            results = await self._store.accept(
                [p.notification for p in batch],
                functools.partial(decide, now=now, policy=self._policy),
            )
        except Exception as err:  # every waiting request must hear of it, whatever it is
            log.error("commit failed", exc_info=not isinstance(err, StoreError), extra={"batch": len(batch)})
            for p in batch:
                _settle(p.done, exception=err)
        else:
            self._metrics.observe_commit(time.perf_counter() - started, len(batch))
            for p, result in zip(batch, results, strict=True):
                _settle(p.done, result=result)
        finally:
            for _ in batch:
                self._queue.task_done()


def _settle(
    done: asyncio.Future[Accepted], *, result: Accepted | None = None, exception: Exception | None = None
) -> None:
    if done.done():  # the request went away; what it sent is committed all the same
        return
    if exception is not None:
        done.set_exception(exception)
    elif result is not None:
        done.set_result(result)
