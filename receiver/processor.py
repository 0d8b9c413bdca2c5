"""The processor: turns accepted webhook bodies into alert state, in order.

The webhook only appends bodies to the store's inbox. The processor reads
the inbox after the store's cursor, decodes each body, and has the store
apply the dedup decisions and advance the cursor in one transaction. The
webhook wakes it after each accept; after a restart it resumes from the
cursor, so nothing accepted is lost and nothing is processed twice. Dedup
decides with each body's receipt time, so processing later changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from receiver.alertmanager import InvalidNotification, Notification, decode
from receiver.dedup import DedupPolicy, decide
from receiver.metrics import Metrics
from receiver.store import InboxEntry, Processed, Store, StoreError

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0


class Processor:
    """Consumes the inbox, one batch per transaction."""

    def __init__(self, store: Store, *, policy: DedupPolicy, metrics: Metrics, batch_size: int = 512) -> None:
        self._store = store
        self._decide = functools.partial(decide, policy=policy)
        self._metrics = metrics
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()
        self.cursor = 0
        """The last inbox seq processed."""

    def wake(self) -> None:
        """Say that the inbox has something new."""
        self._wake.set()

    async def run(self) -> None:
        """Process whatever arrives, until cancelled."""
        self.cursor = await self._store.cursor()
        while True:
            self._wake.clear()
            try:
                if await self.step():
                    continue
            except StoreError as err:
                log.error("processing failed; retrying", extra={"error": str(err), "cursor": self.cursor})
                await asyncio.sleep(RETRY_SECONDS)
                self.cursor = await self._store.cursor()
                continue
            await self._wake.wait()

    async def step(self) -> int:
        """Process the next batch of the inbox; how many entries it held."""
        async with self._one_at_a_time:
            entries = await self._store.inbox(after=self.cursor, limit=self._batch_size)
            if not entries:
                return 0
            processed = await self._store.apply([(e, _decode(e)) for e in entries], self._decide)
            self.cursor = entries[-1].seq
        for item in processed:
            self._observe(item)
        return len(entries)

    async def drain(self) -> None:
        """Process until the inbox is empty (for shutdown and tests)."""
        while await self.step():
            pass

    def _observe(self, item: Processed) -> None:
        if item.notification is None:
            self._metrics.count_notification("rejected_invalid")
            return
        result = "accepted" if item.notification_id is not None else "duplicate"
        self._metrics.count_notification(result)
        self._metrics.observe_notification(item.notification, item.decisions)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "notification %s",
                result,
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
