"""The incident book: alert news in, incidents out; in any order, with duplicates, the same incidents."""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.alerts.dedup import DedupPolicy
from receiver.alerts.matchers import parse
from receiver.engine.processor import Processor
from receiver.incidents.book import Book, CascadeWindow, IncidentPolicy, UnknownIncident, snapshot
from receiver.incidents.correlation import CorrelationPolicy, FiringAlert, is_cascade
from receiver.incidents.lifecycle import EventKind, IncidentStatus, InvalidTransition
from receiver.incidents.severity import Rule, Severity, Threshold
from receiver.incidents.suppression import Dependency
from receiver.store import IncidentQuery
from receiver.store.sqlite import SQLiteStore
from tests.payloads import alert, notification

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
DB_DOWN = Dependency(
    "database",
    (parse('alertname="DatabaseDown"'),),
    (parse('alertname=~"HighLatency|HighErrorRate"'),),
    ("cluster",),
)
POLICY = IncidentPolicy(
    rules=(Rule("5xx", Severity.SEV1, (parse('alertname="HighErrorRate"'),), (), Threshold("value", ">", 50)),),
    dependencies=(DB_DOWN,),
)


def labels(name: str, **more: str) -> dict[str, str]:
    return {"alertname": name, "cluster": "eu1", **more}


def fire(book: Book, fp: str, lbls: dict[str, str], at: datetime = T0, annotations: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    book.fired(fp, lbls, annotations or {}, at)
    return book.settle(at)


def test_alerts_of_one_scope_make_one_incident_and_another_scope_another() -> None:
    book = Book(POLICY)
    fire(book, "a", labels("PodCrashLooping", namespace="shop", service="cart"))
    changes = fire(book, "b", labels("HighMemory", namespace="shop", service="cart"), T0 + timedelta(minutes=1))
    fire(book, "c", labels("PodCrashLooping", namespace="billing"))
    assert len(book.incidents) == 2
    shop = next(i for i in book.incidents.values() if i.scope == "namespace:shop")
    assert set(shop.members) == {"a", "b"} and shop.id == "INC-20261122-0001"
    assert shop.title == "PodCrashLooping in namespace shop"
    assert [e.kind for _, e, _ in changes.events] == [EventKind.CORRELATED]


def test_first_classification_counts_the_incident_and_is_in_the_timeline() -> None:
    book = Book(POLICY)
    changes = fire(book, "e", labels("HighErrorRate", namespace="api"), annotations={"value": "73"})
    assert changes.opened == [Severity.SEV1]
    texts = [e.text for _, e, _ in changes.events if e.kind is EventKind.CLASSIFIED]
    assert texts == ["classified SEV1: rule '5xx': value=73 > 50 -> SEV1"]


def test_severity_escalates_and_deescalates_with_reasons() -> None:
    book = Book(POLICY)
    fire(book, "w", labels("DiskFilling", namespace="api", severity="warning"))
    changes = fire(book, "c", labels("ApiDown", namespace="api", severity="critical"), T0 + timedelta(seconds=5))
    incident = next(iter(book.incidents.values()))
    assert incident.severity is Severity.SEV2
    assert any("escalated from SEV3 to SEV2" in e.text for _, e, _ in changes.events)
    book.resolved("c", T0 + timedelta(seconds=9))
    changes = book.settle(T0 + timedelta(seconds=9))
    assert incident.severity is Severity.SEV3
    assert any("de-escalated from SEV2 to SEV3" in e.text for _, e, _ in changes.events)


def test_an_incident_resolves_after_the_quiet_period_and_reopens_within_the_reopen_window() -> None:
    book = Book(POLICY)
    fire(book, "a", labels("X", namespace="shop"))
    book.resolved("a", T0 + timedelta(minutes=1))
    book.settle(T0 + timedelta(minutes=1))
    incident = next(iter(book.incidents.values()))
    assert not book.tick(T0 + timedelta(minutes=5)).incidents  # 4 minutes quiet: not yet
    changes = book.tick(T0 + timedelta(minutes=6))
    assert incident.status is IncidentStatus.RESOLVED
    assert changes.resolved == [(Severity.SEV4, 360.0)]
    fire(book, "b", labels("Y", namespace="shop"), T0 + timedelta(minutes=20))
    assert incident.status is IncidentStatus.TRIGGERED and set(incident.members) == {"a", "b"}
    assert len(book.incidents) == 1


def test_a_resolved_incident_past_the_reopen_window_takes_no_new_alert() -> None:
    book = Book(POLICY)
    fire(book, "a", labels("X", namespace="shop"))
    book.resolved("a", T0)
    book.settle(T0)
    book.tick(T0 + timedelta(minutes=6))
    fire(book, "b", labels("X", namespace="shop"), T0 + timedelta(minutes=40))
    by_id = {i.id: (sorted(i.members), i.status) for i in book.incidents.values()}
    assert by_id == {
        "INC-20261122-0001": (["a"], IncidentStatus.RESOLVED),
        "INC-20261122-0002": (["b"], IncidentStatus.TRIGGERED),
    }
    book.tick(T0 + timedelta(minutes=60))  # past the reopen window: the resolved one leaves the book
    assert list(book.incidents) == ["INC-20261122-0002"]


def test_symptoms_attach_to_the_root_cause_and_are_placed_again_when_it_resolves() -> None:
    book = Book(POLICY)
    fire(book, "db", labels("DatabaseDown", namespace="data", service="postgres"))
    changes = fire(book, "lat", labels("HighLatency", namespace="api", service="api"))
    assert changes.suppressed == 1 and len(book.incidents) == 1
    incident = next(iter(book.incidents.values()))
    assert incident.members["lat"].role == "symptom" and incident.members["lat"].root == "db"
    book.resolved("db", T0 + timedelta(minutes=1))
    book.settle(T0 + timedelta(minutes=1))
    api = next(i for i in book.incidents.values() if i.scope == "namespace:api")
    assert api.members["lat"].role == "alert" and "lat" not in incident.members


def test_a_root_cause_firing_later_adopts_its_symptoms() -> None:
    book = Book(POLICY)
    fire(book, "lat", labels("HighLatency", namespace="api"))
    changes = fire(book, "db", labels("DatabaseDown", namespace="data"))
    data = next(i for i in book.incidents.values() if i.scope == "namespace:data")
    api = next(i for i in book.incidents.values() if i.scope == "namespace:api")
    assert data.members["lat"].role == "symptom"
    assert api.status is IncidentStatus.RESOLVED and not api.members
    assert changes.suppressed == 1


def test_symptoms_need_the_same_equal_labels() -> None:
    book = Book(POLICY)
    fire(book, "db", labels("DatabaseDown", namespace="data"))
    fire(book, "lat", {"alertname": "HighLatency", "namespace": "api", "cluster": "us2"})
    assert len(book.incidents) == 2


@pytest.mark.parametrize(
    ("source", "expected", "why"),
    [
        ("warning", Severity.SEV2, "cascade -> SEV2 (at most one level above its worst alert's SEV3)"),
        ("critical", Severity.SEV1, "cascade -> SEV1"),
    ],
)
def test_a_cascade_escalates_one_level_above_its_worst_alert(source: str, expected: Severity, why: str) -> None:
    book = Book(POLICY)
    for i in range(6):
        book.fired(f"a{i}", labels(f"A{i}", namespace="shop", service=f"s{i % 2}", severity=source), {}, T0)
    changes = book.settle(T0)
    incident = next(iter(book.incidents.values()))
    assert incident.cascade and incident.severity is expected
    assert incident.classification is not None and incident.classification.reasons[-1] == why
    assert any(e.text.startswith("cascade") for _, e, _ in changes.events)


def test_people_acknowledge_resolve_and_note() -> None:
    book = Book(POLICY)
    fire(book, "a", labels("X", namespace="shop", severity="critical"))
    id = next(iter(book.incidents))
    changes = book.transition(id, IncidentStatus.ACKNOWLEDGED, T0 + timedelta(seconds=90), "alice", "on it")
    assert changes.acknowledged == [(Severity.SEV2, 90.0)]
    assert changes.events[0][1].actor == "alice"
    book.transition(id, IncidentStatus.RESOLVED, T0 + timedelta(minutes=3), "alice", "fixed")
    with pytest.raises(InvalidTransition):
        book.transition(id, IncidentStatus.RESOLVED, T0 + timedelta(minutes=4), "alice", "again")
    with pytest.raises(UnknownIncident):
        book.note("INC-20200101-0001", "hello", T0, "bob")
    assert book.note(id, "root cause: config push", T0, "bob").events[0][1].kind is EventKind.NOTE


def test_duplicates_and_resolves_of_unknown_alerts_change_nothing() -> None:
    book = Book(POLICY)
    fire(book, "a", labels("X", namespace="shop"))
    book.fired("a", labels("X", namespace="shop"), {}, T0 + timedelta(seconds=1))
    book.resolved("zzz", T0)
    assert not book.settle(T0 + timedelta(seconds=1))


# Order independence.

SERVICES = ("api", "cart", "db")
NAMES = ("HighLatency", "HighErrorRate", "PodCrashLooping", "DatabaseDown")


@st.composite
def bursts(draw: st.DrawFn) -> list[tuple[str, dict[str, str]]]:
    """Distinct firing alerts of a burst, over a few scopes, services and a possible root cause."""
    count = draw(st.integers(1, 14))
    alerts = {}
    for _ in range(count):
        name = draw(st.sampled_from(NAMES))
        lbls = {
            "alertname": name,
            "namespace": draw(st.sampled_from(("shop", "data", "api"))),
            "cluster": draw(st.sampled_from(("eu1", "us2"))),
            "service": draw(st.sampled_from(SERVICES)),
            "severity": draw(st.sampled_from(("critical", "warning", "info"))),
        }
        alerts["|".join(f"{k}={v}" for k, v in sorted(lbls.items()))] = lbls
    return list(alerts.items())


@settings(max_examples=400, deadline=None)
@given(burst=bursts(), data=st.data())
def test_any_order_with_duplicates_and_batching_gives_the_same_incidents(
    burst: list[tuple[str, dict[str, str]]], data: st.DataObject
) -> None:
    reference = Book(POLICY)
    for fp, lbls in burst:
        reference.fired(fp, lbls, {}, T0)
    reference.settle(T0)
    replay = data.draw(st.lists(st.sampled_from(burst), min_size=len(burst), max_size=3 * len(burst)))
    news = data.draw(st.permutations(burst + replay))
    cut = data.draw(st.integers(0, len(news)))
    book = Book(POLICY)
    for i, (fp, lbls) in enumerate(news):
        book.fired(fp, lbls, {}, T0 + timedelta(seconds=i))
        if i == cut:
            book.settle(T0 + timedelta(seconds=i))
    book.settle(T0 + timedelta(seconds=len(news)))
    assert snapshot(book.incidents.values()) == snapshot(reference.incidents.values())


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.booleans(), st.sampled_from(("s1", "s2", "s3", ""))), max_size=40
    )
)
def test_the_cascade_window_agrees_with_is_cascade(steps: list[tuple[str, bool, str]]) -> None:
    policy = CorrelationPolicy(cascade_alerts=2, cascade_services=1, window=timedelta(seconds=5))
    window = CascadeWindow()
    firing: dict[str, FiringAlert] = {}
    for i, (fp, fires, service) in enumerate(steps):
        now = T0 + timedelta(seconds=i)
        if fires:
            window.fired(fp, now, service)
            firing[fp] = FiringAlert(fp, {"service": service} if service else {}, now)
        else:
            window.resolved(fp)
            firing.pop(fp, None)
        assert window.is_cascade(now, policy) == is_cascade(firing.values(), now, policy)


# The same property end to end: notifications through dedup, the book and the store.


@st.composite
def notifications(draw: st.DrawFn) -> list[bytes]:
    """Notifications of 1 to 3 alerts of a burst; an alert may be in several of them."""
    burst = draw(bursts())
    groups = draw(st.lists(st.lists(st.sampled_from(burst), min_size=1, max_size=3), min_size=1, max_size=8))
    covered = {fp for group in groups for fp, _ in group}
    groups += [[item] for item in burst if item[0] not in covered]  # every alert fires somewhere
    return [
        json.dumps(notification(*(alert(lbls.pop("alertname"), **lbls) for _, lbls in map(_copy, group)))).encode()
        for group in groups
    ]


def _copy(item: tuple[str, dict[str, str]]) -> tuple[str, dict[str, str]]:
    return item[0], dict(item[1])


async def _incidents_after(bodies: list[bytes]) -> list[tuple[frozenset[str], frozenset[str], Severity | None, bool]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "r.db")
        await store.open()
        try:
            processor = Processor(
                store, policy=DedupPolicy(), report=lambda *_: None, book=Book(POLICY), clock=lambda: T0, batch_size=3
            )
            for i, raw in enumerate(bodies):
                await store.accept(raw, T0 + timedelta(seconds=i))
            await processor.drain()
            found = [await store.incident(i.id, 0) for i in await store.incidents(IncidentQuery(limit=500))]
            return snapshot(f[0] for f in found if f is not None)
        finally:
            await store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=notifications(), data=st.data())
def test_replaying_notifications_in_any_order_with_duplicates_stores_the_same_incidents(
    bodies: list[bytes], data: st.DataObject
) -> None:
    repeats = data.draw(st.lists(st.sampled_from(bodies), max_size=len(bodies)))
    shuffled = data.draw(st.permutations(bodies + repeats))
    reference = asyncio.run(_incidents_after(bodies))
    assert reference  # something fired: the comparison is not between two empty lists
    assert asyncio.run(_incidents_after(shuffled)) == reference
