"""The dead man's switch: the watchdog's arrivals, written with the batch that carried one, read back at start."""

from __future__ import annotations

import pytest

from receiver.engine.batch import decide_all, fingerprints
from receiver.incidents.watchdog import Sightings
from receiver.store import Backend, Batch, StoreError
from tests.processing import DECIDE
from tests.store_contract.conftest import OpenStore, accepted, at, firing, notification


async def batch(store: Backend, minutes: float, watchdog: Sightings | None) -> Batch:
    """A notification of the watchdog accepted at ``minutes``, decided: its batch, carrying ``watchdog``."""
    entries = [await accepted(store, notification(firing("Watchdog")), minutes)]
    processed, changed = decide_all(entries, await store.alert_states(fingerprints(entries)), DECIDE)
    return Batch(await store.cursor(), processed, changed, watchdog=watchdog)


async def test_no_arrival_written_reads_back_as_none(store: Backend) -> None:
    assert (await store.load_incidents(at(-60))).watchdog == Sightings()


async def test_the_arrivals_a_batch_carries_are_read_back_after_a_restart(backend: OpenStore) -> None:
    async with backend() as store:
        await store.process(await batch(store, 0, Sightings(None, at(0))))
        assert (await store.load_incidents(at(-60))).watchdog == Sightings(None, at(0))
        await store.process(await batch(store, 2.5, Sightings(at(0), at(2.5))))
    async with backend() as store:
        assert (await store.load_incidents(at(-60))).watchdog == Sightings(at(0), at(2.5))


async def test_a_batch_without_a_new_arrival_keeps_the_last_written(store: Backend) -> None:
    await store.process(await batch(store, 0, Sightings(at(-2), at(0))))
    await store.process(await batch(store, 0.5, None))
    assert (await store.load_incidents(at(-60))).watchdog == Sightings(at(-2), at(0))


async def test_the_arrivals_of_a_refused_batch_are_not_written(store: Backend) -> None:
    await store.process(await batch(store, 0, Sightings(at(-2), at(0))))
    refused = await batch(store, 5, Sightings(at(0), at(5)))
    await store.process(await batch(store, 6, None))  # another engine moved the cursor past the refused batch's
    with pytest.raises(StoreError):
        await store.process(refused)
    assert (await store.load_incidents(at(-60))).watchdog == Sightings(at(-2), at(0))
