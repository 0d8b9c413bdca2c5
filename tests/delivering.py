"""Corpus alerts delivered as Alertmanager groups them, through the processor and a real store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from receiver.alerts.dedup import DedupPolicy
from receiver.engine.processor import Processor
from receiver.incidents.book import Book, IncidentPolicy
from receiver.playbooks.remediation import Remediation
from receiver.store.sqlite import SQLiteStore
from tests.conftest import T0
from tests.corpus import CorpusAlert, payload


def processor(
    store: SQLiteStore, policy: IncidentPolicy | None = None, remediation: Remediation | None = None
) -> Processor:
    """A processor with an incident book (``policy``: the defaults) and playbooks, on a clock stopped at T0."""
    book = Book(policy or IncidentPolicy())
    return Processor(
        store, policy=DedupPolicy(), report=lambda c, t: None, book=book, clock=lambda: T0, remediation=remediation
    )


async def deliver(store: SQLiteStore, proc: Processor, at: datetime, alerts: Sequence[CorpusAlert]) -> None:
    """One notification per Alertmanager group (namespace; the Watchdog alone), received at ``at``, processed."""
    groups: dict[tuple[bool, str], list[CorpusAlert]] = {}
    for a in alerts:
        groups.setdefault((a.name == "Watchdog", a.labels.get("namespace", "")), []).append(a)
    for group in groups.values():
        body = payload(group, starts_at=T0 - timedelta(minutes=15))
        await store.accept(json.dumps(body).encode(), at)
    await proc.drain()
