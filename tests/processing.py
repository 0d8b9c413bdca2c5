"""Processing as the engine does it, for tests that drive a store directly: read, decide (pure), write one batch."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Protocol

from receiver.alerts.dedup import DedupPolicy, decide
from receiver.engine.batch import Decide, Entries, decide_all, fingerprints
from receiver.store import AlertStore, Batch, Expiry, InboxStore, Processed, ProcessingStore

DECIDE = functools.partial(decide, policy=DedupPolicy())


class Processing(InboxStore, AlertStore, ProcessingStore, Protocol):
    """What processing needs of a store."""


async def apply(store: Processing, entries: Entries, decide: Decide = DECIDE) -> list[Processed]:
    """Process ``entries`` after the store's cursor, alert state only (no incidents); what each became."""
    after = await store.cursor()
    processed, changed = decide_all(entries, await store.alert_states(fingerprints(entries)), decide)
    await store.process(Batch(after, processed, changed))
    return processed


async def expire(store: Processing, cutoff: datetime, now: datetime) -> list[str]:
    """Expire the firing alerts last seen before ``cutoff``; their fingerprints."""
    silent = await store.silent(cutoff)
    await store.expire(Expiry(cutoff, now, silent))
    return silent
