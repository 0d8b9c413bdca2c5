"""Alert state: decisions written with the cursor, duplicates, expiry, the listing, the news log, forgetting."""

from __future__ import annotations

from dataclasses import replace

import pytest

from receiver.alerts import matchers
from receiver.alerts.dedup import Outcome, Status
from receiver.store import AlertQuery, Backend, Batch, Expiry, StoreError
from tests.processing import apply, expire
from tests.store_contract.conftest import OpenStore, accepted, at, firing, notification, resolved

THREE = notification(firing("A", team="x"), firing("B", team="y"), firing("C"))


async def test_decisions_are_stored_and_read_back_as_states(store: Backend) -> None:
    entry = await accepted(store, THREE)
    [processed] = await apply(store, [entry])
    assert [d.outcome for d in processed.decisions] == [Outcome.FIRED] * 3
    fps = [a.fingerprint for a in THREE.alerts]
    states = await store.alert_states([*fps, "0000000000000000"])
    assert states == {d.state.fingerprint: d.state for d in processed.decisions}
    assert await store.cursor() == entry[0].seq
    assert [(e.kind, e.fingerprint, e.notification_id) for e in await store.events()] == [
        ("fired", fp, entry[0].seq) for fp in fps
    ]
    assert await store.alert_firing(fps[0]) and not await store.alert_firing("0000000000000000")


async def test_a_duplicate_refreshes_last_seen_only_and_is_no_news(store: Backend) -> None:
    await apply(store, [await accepted(store, THREE)])
    [again] = await apply(store, [await accepted(store, THREE, minutes=5)])
    assert {d.outcome for d in again.decisions} == {Outcome.DUPLICATE} and again.notification_id is None
    [state] = (await store.alert_states([THREE.alerts[0].fingerprint])).values()
    assert (state.last_seen, state.last_changed) == (at(5), at(0))
    assert len(await store.events()) == 3


async def test_a_batch_is_refused_once_processed_or_when_the_cursor_moved(store: Backend) -> None:
    first = await accepted(store, THREE)
    await apply(store, [first])
    with pytest.raises(StoreError, match="processed already"):
        await apply(store, [first])
    later = await accepted(store, THREE, minutes=1)
    [processed] = await apply(store, [later])
    stale_engine = Batch(first[0].seq - 1, [replace(processed, seq=later[0].seq + 1)])
    with pytest.raises(StoreError):  # read after a cursor that has moved on since: another engine
        await store.process(stale_engine)
    assert await store.cursor() == later[0].seq
    assert len(await store.events()) == 3


async def test_state_survives_a_reopen(backend: OpenStore) -> None:
    async with backend() as store:
        await apply(store, [await accepted(store, THREE)])
        before = await store.alerts(AlertQuery())
    async with backend() as store:
        assert await store.alerts(AlertQuery()) == before
        counts = await store.count_alerts()
        assert (counts[Status.FIRING], counts[Status.RESOLVED], counts[Status.EXPIRED]) == (3, 0, 0)


async def test_silent_firing_alerts_expire_with_news_and_a_repeat_revives_them(store: Backend) -> None:
    a, b, c = THREE.alerts
    await apply(store, [await accepted(store, THREE)])
    await apply(store, [await accepted(store, replace(THREE, alerts=(b,)), minutes=30)])  # b repeats at 30
    assert await store.silent(at(10)) == [a.fingerprint, c.fingerprint]
    with pytest.raises(StoreError):  # b is not silent: the store refuses, and changes nothing
        await store.expire(Expiry(at(10), at(40), [a.fingerprint, b.fingerprint]))
    assert await expire(store, at(10), at(40)) == [a.fingerprint, c.fingerprint]
    statuses = {s.fingerprint: s.status for s in (await store.alert_states([a.fingerprint, b.fingerprint])).values()}
    assert statuses == {a.fingerprint: Status.EXPIRED, b.fingerprint: Status.FIRING}
    assert [(e.kind, e.fingerprint, e.at) for e in await store.events()][-2:] == [
        ("expired", a.fingerprint, at(40)),
        ("expired", c.fingerprint, at(40)),
    ]
    assert await store.silent(at(10)) == []
    [revived] = await apply(store, [await accepted(store, replace(THREE, alerts=(a,)), minutes=42)])
    assert revived.decisions[0].outcome is Outcome.FIRED


def _query(*texts: str, statuses: set[Status] | None = None, limit: int | None = None, offset: int = 0) -> AlertQuery:
    return AlertQuery(frozenset(statuses) if statuses else None, tuple(matchers.parse(t) for t in texts), limit, offset)


async def _listed(store: Backend, query: AlertQuery) -> tuple[int, list[str]]:
    page = await store.alerts(query)
    return page.total, [a.labels["alertname"] for a in page.alerts]


async def test_the_listing_filters_by_status_and_matchers_and_pages_after_filtering(store: Backend) -> None:
    names = [f"N{i}" for i in range(6)]
    for i, name in enumerate(names):  # N5 changed last: listed first
        labels = {"team": "x" if i % 2 else "y", **({"zone": "a"} if i < 3 else {})}
        await apply(store, [await accepted(store, notification(firing(name, **labels)), minutes=i)])
    await apply(store, [await accepted(store, notification(resolved("N0", team="y", zone="a")), minutes=10)])
    assert await _listed(store, _query()) == (6, ["N0", "N5", "N4", "N3", "N2", "N1"])
    assert await _listed(store, _query(statuses={Status.RESOLVED})) == (1, ["N0"])
    assert await _listed(store, _query('team="x"')) == (3, ["N5", "N3", "N1"])
    assert await _listed(store, _query('team!="x"', statuses={Status.FIRING})) == (2, ["N4", "N2"])
    assert await _listed(store, _query('zone=""')) == (3, ["N5", "N4", "N3"])  # a missing label is empty
    assert await _listed(store, _query('alertname=~"N[1-4]"', limit=2, offset=1)) == (4, ["N3", "N2"])
    assert await _listed(store, _query('alertname!~"N[1-3]"', 'team="y"')) == (2, ["N0", "N4"])
    assert await _listed(store, _query('zone=~"a|b"', limit=1, offset=2)) == (3, ["N1"])
    assert await _listed(store, _query(limit=2, offset=5)) == (6, ["N1"])
    assert await _listed(store, _query('alertname=~"N"', offset=1)) == (0, [])  # anchored: no name is just N
    page = (await store.alerts(_query('alertname="N0"'))).alerts[0]
    assert (page.labels, page.annotations["summary"]) == (
        {"alertname": "N0", "team": "y", "zone": "a"},
        "N0 is resolved",
    )


async def test_forgetting_drops_old_resolved_and_expired_alerts_and_old_news_only(store: Backend) -> None:
    await apply(store, [await accepted(store, THREE)])
    a = THREE.alerts[0]
    gone = replace(THREE, alerts=(replace(a, status="resolved", ends_at=at(9)),))
    await apply(store, [await accepted(store, gone, 10)])
    assert await store.prune_alerts(at(10)) == 0  # changed at minute 10: not before it
    assert await store.prune_alerts(at(11)) == 1
    assert a.fingerprint not in await store.alert_states([x.fingerprint for x in THREE.alerts])
    assert {s.state.status for s in (await store.alerts(AlertQuery())).alerts} == {Status.FIRING}
    assert [e.kind for e in await store.events()] == []  # the news of minutes 0 and 10 is older than 11
    [again] = await apply(store, [await accepted(store, notification(firing("A", team="x")), minutes=20)])
    assert again.decisions[0].outcome is Outcome.FIRED  # forgotten: seen as new
