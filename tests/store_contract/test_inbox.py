"""The inbox: accepted in order, durable, read after a cursor that moves only with processing, pruned when done."""

from __future__ import annotations

import asyncio

from receiver.store import Backend, InboxEntry
from tests.processing import apply
from tests.store_contract.conftest import OpenStore, at


async def test_accepted_bodies_come_back_in_order_as_received(store: Backend) -> None:
    seqs = [await store.accept(b'{"n": %d}' % i, at(i)) for i in range(3)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    entries = await store.inbox(after=0, limit=10)
    assert entries == [InboxEntry(seqs[i], at(i), b'{"n": %d}' % i) for i in range(3)]
    assert await store.inbox(after=seqs[0], limit=1) == entries[1:2]


async def test_concurrent_accepts_each_get_their_own_seq(store: Backend) -> None:
    seqs = await asyncio.gather(*(store.accept(b'{"n": %d}' % i, at()) for i in range(50)))
    assert len(set(seqs)) == 50
    bodies = {e.seq: e.body for e in await store.inbox(after=0, limit=100)}
    assert {seq: bodies[seq] for seq in seqs} == {seq: b'{"n": %d}' % i for i, seq in enumerate(seqs)}


async def test_the_inbox_and_the_cursor_survive_a_reopen(backend: OpenStore) -> None:
    async with backend() as store:
        first = await store.accept(b'{"a": 1}', at())
        second = await store.accept(b'{"b": 2}', at(1))
        await apply(store, [(InboxEntry(first, at(), b'{"a": 1}'), None)])
    async with backend() as store:
        assert [(e.seq, e.body) for e in await store.inbox(after=0, limit=10)] == [
            (first, b'{"a": 1}'),
            (second, b'{"b": 2}'),
        ]
        assert await store.cursor() == first
        assert await store.backlog() == 1


async def test_the_cursor_and_backlog_follow_processing(store: Backend) -> None:
    assert (await store.cursor(), await store.backlog()) == (0, 0)
    entries = [(InboxEntry(await store.accept(b"{}", at()), at(), b"{}"), None) for _ in range(3)]
    assert await store.backlog() == 3
    await apply(store, entries[:2])
    assert (await store.cursor(), await store.backlog()) == (entries[1][0].seq, 1)
    assert [e.seq for e in await store.inbox(after=await store.cursor(), limit=10)] == [entries[2][0].seq]


async def test_prune_forgets_only_processed_entries_received_before_the_time(store: Backend) -> None:
    old = await store.accept(b"old", at(0))
    new = await store.accept(b"new", at(10))
    waiting = await store.accept(b"waiting", at(0))
    await apply(store, [(InboxEntry(old, at(0), b"old"), None), (InboxEntry(new, at(10), b"new"), None)])
    assert await store.prune_inbox(before=at(5)) == 1
    assert [e.body for e in await store.inbox(after=0, limit=10)] == [b"new", b"waiting"]
    assert await store.prune_inbox(before=at(5)) == 0
    assert await store.cursor() == new and waiting > new


async def test_the_oldest_unprocessed_entry_is_the_first_after_the_cursor(store: Backend) -> None:
    assert await store.oldest_unprocessed() is None  # nothing waits: a stall gauge reads 0
    first = await store.accept(b'{"a": 1}', at(0))
    await store.accept(b'{"b": 2}', at(5))
    assert await store.oldest_unprocessed() == at(0)
    await apply(store, [(InboxEntry(first, at(0), b'{"a": 1}'), None)])
    assert await store.oldest_unprocessed() == at(5)  # the cursor moved past the first
