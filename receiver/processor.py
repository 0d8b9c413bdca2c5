"""The processor: turns accepted webhook bodies into alert state, in order.

The webhook only appends bodies to the store's inbox. The processor takes
the entries after the store's cursor, in order, and has the store apply the
dedup decisions and advance the cursor in one transaction. It runs in the
engine process (``receiver.engine``), which reads every entry back from the
inbox; run inline (tests), the webhook hands over each notification it has
just decoded and committed, so nothing is decoded twice. Nothing accepted is
lost, nothing is processed twice, and since dedup decides with each body's
receipt time, processing later changes nothing. What each step counted goes
to ``report`` as a ``Tally``, for whichever process exports the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from receiver.alertmanager import InvalidNotification, Notification, Valid, decode
from receiver.clock import Clock
from receiver.dedup import DedupPolicy, decide, expiry_cutoff
from receiver.metrics import Tally
from receiver.store import InboxEntry, Processed, Store, StoreError

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
HANDOFF_LIMIT = 10_000
"""Most decoded notifications kept in memory for the processor; the rest wait in the inbox."""
Report = Callable[[int, Tally], None]
"""Told, after each step, the cursor and what the step counted."""
Batch = list[tuple[InboxEntry, Notification | None]]


class Processor:
    """Consumes the inbox, one batch per transaction."""

    def __init__(
        self, store: Store, *, policy: DedupPolicy, report: Report, batch_size: int = 512, linger: float = 0.0
    ) -> None:
        """``linger``: seconds to let entries gather after a partial batch (fewer, larger transactions)."""
        self._store = store
        self._policy = policy
        self._decide = functools.partial(decide, policy=policy)
        self._report = report
        self._batch_size = batch_size
        self._linger = linger
        self._wake = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()
        self._handed: dict[int, tuple[InboxEntry, Valid]] = {}
        self._ahead: tuple[int, asyncio.Task[Batch]] | None = None
        """The batch after a seq, being read and decoded while the one before it is written."""
        self.cursor = 0
        """The last inbox seq processed."""

    def offer(self, entry: InboxEntry, valid: Valid) -> None:
        """Say that ``entry`` is committed to the inbox, and what its body validated as."""
        if entry.seq > self.cursor and len(self._handed) < HANDOFF_LIMIT:
            self._handed[entry.seq] = (entry, valid)
        self._wake.set()

    def wake(self) -> None:
        """Say that the inbox has grown (read it back: nothing was handed over)."""
        self._wake.set()

    async def run(self) -> None:
        """Process whatever arrives, until cancelled."""
        self.cursor = await self._store.cursor()
        try:
            await self._loop()
        finally:
            self._drop_ahead()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                processed = await self.step()
            except Exception as err:  # a store fault or a bug: say so, and keep the daemon processing
                log.error(
                    "processing failed; retrying",
                    exc_info=not isinstance(err, StoreError),
                    extra={"error": str(err), "cursor": self.cursor},
                )
                await asyncio.sleep(RETRY_SECONDS)
                with contextlib.suppress(StoreError):
                    self.cursor = await self._store.cursor()
                continue
            if processed >= self._batch_size:  # more is waiting
                continue
            if not processed:
                await self._wake.wait()
            await asyncio.sleep(self._linger)

    async def step(self) -> int:
        """Process the next batch of the inbox; how many entries it held."""
        async with self._one_at_a_time:
            entries = self._take_handed() or await self._read_ahead() or await self._read_inbox()
            if not entries:
                return 0
            last = entries[-1][0].seq
            if len(entries) == self._batch_size and not self._handed:  # more waits: read and decode it meanwhile
                self._ahead = (last, asyncio.create_task(self._read(after=last)))
            processed = await self._store.apply(entries, self._decide)
            self.cursor = last
        tally = Tally()
        for item in processed:
            tally.count(item.notification, item.decisions)
            _log(item)
        self._report(self.cursor, tally)
        return len(entries)

    async def expire(self, now: datetime) -> list[str]:
        """Expire the firing alerts silent for longer than the policy allows; their fingerprints."""
        async with self._one_at_a_time:
            expired = await self._store.expire(expiry_cutoff(now, self._policy), now)
        for fingerprint in expired:
            log.info("alert expired: no update for %s", self._policy.expire_after, extra={"fingerprint": fingerprint})
        if expired:
            self._report(self.cursor, Tally(expired=len(expired)))
        return expired

    async def forget(self, before: datetime) -> int:
        """Forget resolved and expired alerts unchanged since ``before``; how many."""
        async with self._one_at_a_time:
            forgotten = await self._store.prune_alerts(before)
        if forgotten:
            log.info("forgot %d resolved or expired alerts", forgotten)
        return forgotten

    def _take_handed(self) -> Batch:
        """The handed-over entries that continue the cursor without a gap."""
        taken: Batch = []
        seq = self.cursor + 1
        while len(taken) < self._batch_size and seq in self._handed:
            entry, valid = self._handed.pop(seq)
            taken.append((entry, valid.notification()))
            seq += 1
        return taken

    async def _read_inbox(self) -> Batch:
        entries = await self._store.inbox(after=self.cursor, limit=self._batch_size)
        for stale in [seq for seq in self._handed if seq <= self.cursor]:
            del self._handed[stale]
        handed = [self._handed.pop(e.seq, None) for e in entries]
        return [(e, h[1].notification() if h else _decode(e)) for e, h in zip(entries, handed, strict=True)]

    async def _read(self, after: int) -> Batch:
        return [(e, _decode(e)) for e in await self._store.inbox(after=after, limit=self._batch_size)]

    async def _read_ahead(self) -> Batch:
        """The batch read ahead, if it starts right after the cursor (a failed write leaves it stale)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return []
        after, reading = ahead
        if after != self.cursor:
            reading.cancel()
            return []
        return await reading

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None

    async def drain(self) -> None:
        """Process until the inbox is empty (for shutdown and tests)."""
        while await self.step():
            pass


def _log(item: Processed) -> None:
    if item.notification is None or not log.isEnabledFor(logging.DEBUG):
        return
    log.debug(
        "notification processed",
        extra={
            "inbox_seq": item.seq,
            "group_key": item.notification.group_key,
            "news": [f"{d.state.fingerprint}:{d.outcome.value}" for d in item.decisions if d.is_news][:50],
        },
    )


def _decode(entry: InboxEntry) -> Notification | None:
    try:
        return decode(entry.body)
    except InvalidNotification as err:  # validated before it was accepted: only an upgrade can get here
        log.error("inbox entry cannot be decoded; skipped", extra={"inbox_seq": entry.seq, "error": str(err)})
        return None


async def expiry_loop(processor: Processor, clock: Clock, interval: timedelta, retention: timedelta) -> None:
    """Every ``interval``, until cancelled: expire silent alerts, forget those resolved before ``retention``."""
    while True:
        now = clock()
        try:
            await processor.expire(now)
            await processor.forget(now - retention)
        except StoreError as err:
            log.error("expiry failed", extra={"error": str(err)})
        await asyncio.sleep(interval.total_seconds())
