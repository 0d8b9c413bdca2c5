"""The processor: in order, nothing twice, nothing skipped, also when a write fails."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from receiver.alerts.dedup import DedupPolicy
from receiver.engine.processor import Processor
from receiver.metrics import Metrics, Tally
from receiver.store import Batch, IncidentQuery, StoreError
from receiver.store.sqlite import SQLiteStore
from tests.conftest import T0
from tests.payloads import alert, body


class FlakyStore:
    """A real SQLite store whose first ``failures`` writes fail, as a full disk would make them."""

    def __init__(self, inner: SQLiteStore, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.applied: list[list[int]] = []

    async def process(self, batch: Batch) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("database or disk is full")
        self.applied.append([item.seq for item in batch.processed])
        await self.inner.process(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
async def inner(tmp_path: Path) -> Any:
    store = SQLiteStore(tmp_path / "receiver.db")
    await store.open()
    yield store
    await store.close()


async def test_batches_are_processed_in_order_reading_ahead(inner: SQLiteStore) -> None:
    for name in "ABCDE":
        await inner.accept(body(alert(name)), T0)
    store = FlakyStore(inner, failures=0)
    reports: list[tuple[int, Tally]] = []
    processor = Processor(store, policy=DedupPolicy(), report=lambda c, t: reports.append((c, t)), batch_size=2)
    await processor.drain()
    assert store.applied == [[1, 2], [3, 4], [5]]
    assert [cursor for cursor, _ in reports] == [2, 4, 5]
    assert sum(t.notifications["accepted"] for _, t in reports) == 5
    assert await inner.cursor() == 5


async def test_a_failed_write_leaves_nothing_skipped_by_the_batch_read_ahead(inner: SQLiteStore) -> None:
    for name in "ABC":
        await inner.accept(body(alert(name)), T0)
    store = FlakyStore(inner, failures=1)
    processor = Processor(store, policy=DedupPolicy(), report=lambda c, t: None, batch_size=1)
    with pytest.raises(StoreError):
        await processor.step()  # batch [1] fails while batch [2] is being read ahead
    assert processor.cursor == 0
    await processor.drain()
    assert store.applied == [[1], [2], [3]]
    assert sorted(a.labels["alertname"] for a in await inner.list_alerts()) == ["A", "B", "C"]


async def test_after_a_partial_batch_entries_gather_for_the_linger_then_go_in_one_batch(inner: SQLiteStore) -> None:
    for name in "ABC":
        await inner.accept(body(alert(name)), T0)
    store = FlakyStore(inner, failures=0)
    processor = Processor(store, policy=DedupPolicy(), report=lambda c, t: None, batch_size=10, linger=0.5)
    running = asyncio.create_task(processor.run())
    try:
        for _ in range(100):  # the first batch goes at once
            if store.applied:
                break
            await asyncio.sleep(0.01)
        assert store.applied == [[1, 2, 3]]
        for name in "DEF":  # arrive while the processor lingers after its partial batch
            await inner.accept(body(alert(name)), T0)
            processor.wake()
        await asyncio.sleep(0.1)
        assert store.applied == [[1, 2, 3]], "processed before the linger ended"
        for _ in range(200):
            if len(store.applied) > 1:
                break
            await asyncio.sleep(0.01)
        assert store.applied == [[1, 2, 3], [4, 5, 6]]  # together, in one transaction
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_without_incidents_a_tick_does_nothing(inner: SQLiteStore) -> None:
    processor = Processor(inner, policy=DedupPolicy(), report=lambda *_: None)
    await processor.tick(T0)  # the expiry loop calls it: it must not raise
    assert await inner.incidents(IncidentQuery()) == []


async def test_an_idle_processor_takes_what_wakes_it_at_once(inner: SQLiteStore) -> None:
    store = FlakyStore(inner, failures=0)
    processor = Processor(store, policy=DedupPolicy(), report=lambda c, t: None, batch_size=10, linger=5.0)
    running = asyncio.create_task(processor.run())
    try:
        await asyncio.sleep(0.1)  # it found nothing: idle
        await inner.accept(body(alert("Lone")), T0)
        processor.wake()
        await asyncio.wait_for(_applied(store, 1), 2.0)  # far less than the 5 s linger
        assert store.applied == [[1]]
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def _applied(store: FlakyStore, batches: int) -> None:
    while len(store.applied) < batches:  # noqa: ASYNC110 (bounded by the caller's wait_for)
        await asyncio.sleep(0.005)


async def test_an_accepted_entry_that_cannot_be_decoded_is_a_dead_letter_counted_and_passed(
    inner: SQLiteStore,
) -> None:
    await inner.accept(b'{"version": "4", "alerts": "not a list"}', T0)  # e.g. written by another version
    await inner.accept(body(alert("A")), T0)
    reports: list[Tally] = []
    processor = Processor(inner, policy=DedupPolicy(), report=lambda c, t: reports.append(t), batch_size=10)
    await processor.drain()
    assert sum(t.dead_letters for t in reports) == 1
    assert [a.labels["alertname"] for a in await inner.list_alerts()] == ["A"]  # the next one is not held up
    metrics = Metrics(CollectorRegistry())
    for tally in reports:
        metrics.add(Tally.from_json(tally.to_json()))  # as it crosses from the engine process
    assert metrics.registry.get_sample_value("receiver_dead_letters_total") == 1
