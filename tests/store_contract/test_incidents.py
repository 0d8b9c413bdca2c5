"""Incidents: what the book's changes write, read back for the engine (working set) and for the API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from receiver.incidents.book import Book, Changes, IncidentPolicy
from receiver.incidents.lifecycle import IncidentStatus
from receiver.incidents.severity import Severity
from receiver.store import Backend, Batch, IncidentQuery, StoreError, WorkingSet
from tests.processing import apply
from tests.store_contract.conftest import OpenStore, accepted, at, firing, notification

SHOP = {"namespace": "shop", "service": "cart", "severity": "critical"}
BILLING = {"namespace": "billing", "service": "invoices", "severity": "warning"}


def fire(book: Book, fp: str, minutes: float, **labels: str) -> Changes:
    """An alert fires into the book: the changes to write."""
    book.fired(fp, {"alertname": fp, **labels}, {}, at(minutes))
    return book.settle(at(minutes))


async def two_incidents(store: Backend) -> tuple[Book, str, str]:
    """Shop (alerts a1, a2) opened first, then billing (b1); written; their ids."""
    book = Book(IncidentPolicy())
    await store.record(fire(book, "a1", 0, **SHOP))
    await store.record(fire(book, "a2", 1, **SHOP))
    await store.record(fire(book, "b1", 2, **BILLING))
    shop, billing = sorted(book.incidents.values(), key=lambda i: i.seq)
    return book, shop.id, billing.id


async def test_the_working_set_gives_incidents_with_members_in_order_of_joining(backend: OpenStore) -> None:
    async with backend() as store:
        _, shop, billing = await two_incidents(store)
    async with backend() as store:
        loaded = await store.load_incidents(at(-60))
    assert [i.id for i in loaded.incidents] == [shop, billing]
    assert list(loaded.incidents[0].members) == ["a1", "a2"]
    assert loaded.incidents[0].members["a1"].labels == {"alertname": "a1", **SHOP}
    assert (dict(loaded.numbers), loaded.last_seq) == ({"20261122": 2}, loaded.incidents[1].seq)
    book = Book(IncidentPolicy())
    book.set_counters(loaded.numbers, loaded.last_seq)
    for incident in loaded.incidents:
        book.restore(incident)
    fire(book, "c1", 3, namespace="search")
    assert sorted(book.incidents) == [shop, billing, "INC-20261122-0003"]  # numbering continues


async def test_a_member_written_as_gone_is_no_longer_read_back(store: Backend) -> None:
    book, shop, _ = await two_incidents(store)
    await store.record(Changes(incidents={shop: book.incidents[shop]}, members={(shop, "a1"): None}))
    found = await store.incident(shop, timeline_limit=0)
    assert found is not None and list(found[0].members) == ["a2"]


async def test_a_member_written_again_keeps_its_place(store: Backend) -> None:
    book, shop, _ = await two_incidents(store)
    book.resolved("a1", at(5))
    await store.record(book.settle(at(5)))
    found = await store.incident(shop, timeline_limit=100)
    assert found is not None
    incident, timeline = found
    assert [(fp, m.firing) for fp, m in incident.members.items()] == [("a1", False), ("a2", True)]
    assert [e.fingerprint for e in timeline if e.fingerprint] == ["a1", "a2", "a1"]
    last = await store.incident(shop, timeline_limit=1)
    assert last is not None and (last[0].id, last[1]) == (shop, timeline[-1:])
    assert await store.incident("INC-20991231-0001", timeline_limit=1) is None


async def test_listings_filter_and_page_newest_first_without_members(store: Backend) -> None:
    book, shop, billing = await two_incidents(store)
    await store.record(book.transition(shop, IncidentStatus.ACKNOWLEDGED, at(3), "alice", "looking"))
    listed = await store.incidents(IncidentQuery())
    assert [(i.id, i.members, i.stored_members) for i in listed] == [(billing, {}, 1), (shop, {}, 2)]
    assert [i.id for i in await store.incidents(IncidentQuery(statuses=frozenset({IncidentStatus.TRIGGERED})))] == [
        billing
    ]
    sev2 = await store.incidents(IncidentQuery(severities=frozenset({Severity.SEV2})))
    assert [(i.id, i.severity) for i in sev2] == [(shop, Severity.SEV2)]
    assert [i.id for i in await store.incidents(IncidentQuery(service="shop/cart"))] == [shop]
    assert [i.id for i in await store.incidents(IncidentQuery(limit=1))] == [billing]
    assert [i.id for i in await store.incidents(IncidentQuery(before=listed[0].seq))] == [shop]
    counts = await store.count_open_incidents()
    assert sum(counts.values()) == 2 and set(counts) == set(Severity)


async def test_resolved_incidents_older_than_asked_stay_out_of_the_working_set(store: Backend) -> None:
    book, shop, billing = await two_incidents(store)
    await store.record(book.transition(shop, IncidentStatus.RESOLVED, at(10), "alice", "fixed"))
    assert [i.id for i in (await store.load_incidents(at(10))).incidents] == [shop, billing]
    later = await store.load_incidents(at(10) + timedelta(seconds=1))
    assert [i.id for i in later.incidents] == [billing] and later.numbers == {"20261122": 2}
    assert sum((await store.count_open_incidents()).values()) == 1


async def test_incident_changes_of_a_refused_batch_are_not_written(store: Backend) -> None:
    entry = await accepted(store, notification(firing("X")))
    await apply(store, [entry])
    book = Book(IncidentPolicy())
    changes = fire(book, "a1", 0, **SHOP)
    [processed] = await apply(store, [await accepted(store, notification(firing("Y")), 1)])
    with pytest.raises(StoreError):  # read after the first entry, but the cursor moved past the second since
        await store.process(Batch(entry[0].seq, [processed], changes=changes))
    assert await store.incidents(IncidentQuery()) == []
    assert await store.load_incidents(at(-60)) == WorkingSet([], {}, 0)
