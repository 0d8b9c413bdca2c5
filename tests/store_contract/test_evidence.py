"""The store contract for evidence: requests written with a batch once per key, claimed, released, stored.

Every test takes the ``store`` fixture of ``conftest.py``, parameterized over
the backends ``store.backend`` can name; they speak only the ``Store``
protocol and the records of ``receiver.evidence.records``.
"""

from __future__ import annotations

from receiver.evidence.records import EvidenceRequest, EvidenceResult, EvidenceStatus
from receiver.incidents.book import Book, IncidentPolicy
from receiver.incidents.lifecycle import EventKind
from receiver.store import Batch, Store
from tests.store_contract.conftest import at

LABELS = {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "web-1", "container": "web"}


async def _incident(store: Store) -> str:
    book = Book(IncidentPolicy())
    book.fired("f1", LABELS, {}, at(0))
    changes = book.settle(at(0))
    await store.record(changes)
    [id] = changes.incidents
    return id


def _request(
    incident: str, fingerprint: str = "f1", episode: float = 0, reason: str = "incident opened"
) -> EvidenceRequest:
    return EvidenceRequest(incident, fingerprint, at(episode), reason, LABELS, at(1))


async def _asked(store: Store, *requests: EvidenceRequest) -> None:
    await store.process(Batch(await store.cursor(), [], evidence=requests))


async def test_a_request_is_kept_once_per_incident_alert_and_episode(store: Store) -> None:
    id = await _incident(store)
    await _asked(store, _request(id), _request(id, reason="playbook crashloop triggered"))
    await _asked(store, _request(id))  # a replay
    await _asked(store, _request(id, episode=10), _request(id, fingerprint="f2"))
    records = await store.evidence(id)
    assert [(r.request.fingerprint, r.request.episode, r.request.reason) for r in records] == [
        ("f1", at(0), "incident opened"),
        ("f1", at(10), "incident opened"),
        ("f2", at(0), "incident opened"),
    ]
    assert all(r.status is EvidenceStatus.PENDING and r.outcome is None and r.content is None for r in records)
    assert records[0].request.labels == LABELS and records[0].request.requested_at == at(1)


async def test_claimed_requests_are_taken_once_and_released_after_a_crash(store: Store) -> None:
    id = await _incident(store)
    await _asked(store, _request(id), _request(id, fingerprint="f2"))
    first = await store.claim_evidence(1)
    assert [c.request.fingerprint for c in first] == ["f1"]
    assert [c.request.fingerprint for c in await store.claim_evidence(10)] == ["f2"]
    assert await store.claim_evidence(10) == []
    assert [r.status for r in await store.evidence(id)] == [EvidenceStatus.CLAIMED, EvidenceStatus.CLAIMED]
    assert await store.release_evidence() == 2
    again = await store.claim_evidence(10)
    assert [c.request.fingerprint for c in again] == ["f1", "f2"] and again[0].id == first[0].id


async def test_a_result_is_stored_with_its_timeline_line(store: Store) -> None:
    id = await _incident(store)
    await _asked(store, _request(id))
    [claimed] = await store.claim_evidence(10)
    content = {"pod": {"phase": "Running"}, "errors": ["log: not found (404)"]}
    await store.store_evidence(
        EvidenceResult(claimed.id, id, "f1", "partial", "Pod shop/web-1: Running", content, at(2))
    )
    [record] = await store.evidence(id)
    assert (record.status, record.outcome, record.summary, record.content, record.captured_at) == (
        EvidenceStatus.DONE,
        "partial",
        "Pod shop/web-1: Running",
        content,
        at(2),
    )
    assert await store.claim_evidence(10) == [] and await store.release_evidence() == 0
    found = await store.incident(id, 100)
    assert found is not None
    [line] = [e for e in found[1] if e.kind is EventKind.EVIDENCE]
    assert (line.text, line.at, line.fingerprint) == ("evidence partial: Pod shop/web-1: Running", at(2), "f1")
