"""Evidence in the engine: requested with the news, captured beside processing, stored with the incident.

Against kmock's KubernetesEmulator holding the realistic cluster of
``tests/evidence_cluster``: an incident that opens gets its evidence once per
alert episode, in its timeline and through the API; processing goes on while
a capture hangs; a request claimed by an engine that died is captured again;
no credentials, a failing worker and evidence switched off each say so.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest
from prometheus_client import CollectorRegistry

from receiver.app import create_app
from receiver.clock import FixedClock
from receiver.config import Settings
from receiver.engine.builder import Engine, build
from receiver.engine.evidence import STORE_MARGIN_SECONDS
from receiver.evidence import content
from receiver.evidence.records import EvidenceStatus
from receiver.evidence.redact import redact_line
from receiver.kube import Kube
from receiver.metrics import Metrics, Tally
from receiver.playbooks.records import RunStatus
from receiver.store import IncidentQuery, StoreError
from receiver.store.sqlite import SQLiteStore
from receiver.timer import VirtualTimer
from tests import evidence_cluster as c
from tests.corpus import alert as corpus_alert
from tests.corpus import payload
from tests.e2e.harness import eventually
from tests.test_runs import FAST_CRASHLOOP

pytestmark = pytest.mark.kmock(cls=kmock.KubernetesEmulator)
TOKEN = "api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _alert(name: str, status: str = "firing", **subject: str) -> bytes:
    """The webhook body Alertmanager sends for the corpus alert (its subject re-valued), first fired at FIRST_ALERT."""
    sent = corpus_alert(name, **subject) if subject else c.CORPUS_ALERTS[name]
    ends = c.NOW if status == "resolved" else None
    return json.dumps(payload([sent], status, starts_at=c.FIRST_ALERT, ends_at=ends)).encode()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    (tmp_path / "none").mkdir(exist_ok=True)
    return make_settings(remediation={"playbook_dirs": [str(tmp_path / "none")]})


class Counted:
    """What the engine reported, added up."""

    def __init__(self) -> None:
        self.metrics = Metrics(CollectorRegistry())

    def __call__(self, cursor: int, tally: Tally) -> None:
        self.metrics.add(tally)

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def _engine(settings: Settings, store: SQLiteStore, kube: Kube, report: Counted | None = None) -> Engine:
    return build(settings, store, clock=FixedClock(c.NOW), kube=kube, report=report or Counted())


async def _post(engine: Engine, store: SQLiteStore, sent: bytes) -> None:
    await store.accept(sent, c.NOW)
    await engine.processor.drain()


async def _incident(store: SQLiteStore) -> str:
    [incident] = await store.incidents(IncidentQuery())
    return incident.id


async def test_an_incident_that_opens_gets_its_evidence_once_per_episode(
    kmock: Any, settings: Settings, store: SQLiteStore
) -> None:
    c.populate(kmock)
    counted = Counted()
    engine = _engine(settings, store, c.kube(kmock), counted)
    assert engine.evidence is not None
    await _post(engine, store, _alert("KubePodCrashLooping"))
    await engine.evidence.drain()
    id = await _incident(store)
    [record] = await store.evidence(id)
    assert (record.status, record.outcome, record.request.reason) == (
        EvidenceStatus.DONE,
        "captured",
        "incident opened",
    )
    assert record.request.episode == c.FIRST_ALERT and record.captured_at == c.NOW
    assert "rolled out 4 minutes before the first alert" in record.summary
    assert record.content is not None and record.content["pod"]["containers"][0]["lastExitCode"] == 1
    found = await store.incident(id, 100)
    assert found is not None
    [line] = [e for e in found[1] if e.kind == "evidence"]
    assert line.text == f"evidence captured: {record.summary}" and line.fingerprint == record.request.fingerprint
    reads = len(list(kmock))

    await _post(engine, store, _alert("KubePodCrashLooping"))  # Alertmanager repeats the same episode
    await _post(engine, store, _alert("KubePodCrashLooping", status="resolved"))
    await _post(engine, store, _alert("KubePodCrashLooping"))  # the same episode fires again (a reopen)
    await engine.evidence.drain()
    assert len(await store.evidence(id)) == 1 and len(list(kmock)) == reads  # nothing captured again
    assert counted.value("receiver_evidence_captures_total", outcome="captured") == 1
    assert counted.value("receiver_evidence_capture_duration_seconds_count") == 1


async def test_processing_goes_on_while_a_capture_hangs(kmock: Any, settings: Settings, store: SQLiteStore) -> None:
    c.populate(kmock)
    release = asyncio.Event()

    async def hang(request: Any) -> Any:
        await release.wait()
        return c.crashlooping_pod()

    kmock["get"][kmock.resource("", "v1", "pods")] << hang
    engine = _engine(settings, store, c.kube(kmock))
    assert engine.evidence is not None
    try:
        await _post(engine, store, _alert("KubePodCrashLooping"))
        assert await engine.evidence.step() == 1  # the capture starts, and hangs on the pod
        await eventually(lambda: _asked(kmock), "the capture reading the pod")
        for i in range(5):  # meanwhile, news keeps being processed: incidents open in other namespaces
            await _post(
                engine, store, _alert("KubePodCrashLooping", namespace=f"other-{i}", pod=c.POD, container="web")
            )
        assert len(await store.incidents(IncidentQuery())) == 6
        first = (await store.incidents(IncidentQuery()))[-1].id
        [waiting] = await store.evidence(first)
        assert waiting.status is EvidenceStatus.CLAIMED
    finally:
        release.set()
    await engine.evidence.drain()
    [done] = await store.evidence(first)
    assert done.status is EvidenceStatus.DONE and done.outcome == "captured"


async def test_processing_goes_on_while_a_capture_redacts_a_huge_log(
    kmock: Any, make_settings: Callable[..., Settings], store: SQLiteStore, tmp_path: Path, monkeypatch: Any
) -> None:
    """A crash-looping pod that printed a megabyte of UUIDs joined by '-' (54 s of Python's re on one 64 KB line):
    its redaction runs on a worker thread, so webhooks are processed meanwhile. The first line's redaction is held
    until the test has seen them processed; on the event loop, it would hold processing with it."""
    c.populate(kmock, logs=False)
    line = "-".join(str(uuid.UUID(int=i * 0x9E3779B97F4A7C15)) for i in range(1800))  # 64 KB
    huge = "".join(f"{line}\n" for _ in range(15)) + f"env DB_PASSWORD={c.SECRET}\n"
    c.serve_logs(kmock, lambda previous: huge)
    first, started, release, redacted = threading.Lock(), threading.Event(), threading.Event(), threading.Event()

    def held(text: str) -> str:
        if not first.acquire(blocking=False):  # the other lines (and the previous log's) go through
            return redact_line(text)
        started.set()
        release.wait(timeout=60)  # bounded: a loop this held stalls until then, and the test then fails
        out = redact_line(text)
        redacted.set()
        return out

    monkeypatch.setattr(content, "redact_line", held)
    (tmp_path / "none").mkdir()
    settings = make_settings(
        remediation={"playbook_dirs": [str(tmp_path / "none")]},
        evidence={"log_lines": 100, "log_bytes": 1024 * 1024, "deadline": "120s"},
    )
    engine = _engine(settings, store, c.kube(kmock))
    assert engine.evidence is not None
    try:
        await _post(engine, store, _alert("KubePodCrashLooping"))
        assert await engine.evidence.step() == 1
        await eventually(lambda: _now(started.is_set()), "the capture redacting the log")
        for i in range(5):  # meanwhile, news keeps being processed: incidents open in other namespaces
            await _post(
                engine, store, _alert("KubePodCrashLooping", namespace=f"other-{i}", pod=c.POD, container="web")
            )
        assert len(await store.incidents(IncidentQuery())) == 6
        assert not redacted.is_set()  # the log's redaction had not finished while they were processed
    finally:
        release.set()
    await engine.evidence.drain()
    first = (await store.incidents(IncidentQuery()))[-1].id
    [done] = await store.evidence(first)
    assert done.status is EvidenceStatus.DONE and done.outcome == "captured" and done.content is not None
    current = done.content["logs"]["current"]
    assert current["lines"][-1] == "env DB_PASSWORD=[REDACTED]" and c.SECRET not in json.dumps(done.content)
    assert current["lines"][0] == f"[line cut: {len(line)} characters left out]"


async def _now(value: bool) -> bool:
    return value


async def _asked(emulator: Any) -> bool:
    return any(str(r.url.path).endswith(f"/pods/{c.POD}") for r in list(emulator))


async def test_a_request_claimed_by_an_engine_that_died_is_captured_again(
    kmock: Any, settings: Settings, store: SQLiteStore
) -> None:
    c.populate(kmock)
    dead = _engine(settings, store, c.kube(kmock))
    await _post(dead, store, _alert("KubePodCrashLooping"))
    [claimed] = await store.claim_evidence(10)  # the dead engine's worker took it, and never stored anything
    assert await store.claim_evidence(10) == []
    engine = _engine(settings, store, c.kube(kmock))
    assert engine.evidence is not None
    await engine.evidence.drain()
    [record] = await store.evidence(claimed.request.incident)
    assert (record.status, record.outcome) == (EvidenceStatus.DONE, "captured")


async def test_without_credentials_the_evidence_says_so(settings: Settings, store: SQLiteStore) -> None:
    engine = _engine(settings, store, Kube(None, dry_run=True))
    assert engine.evidence is not None
    await _post(engine, store, _alert("KubeNodeNotReady"))
    await engine.evidence.drain()
    [record] = await store.evidence(await _incident(store))
    assert (record.outcome, record.summary) == (
        "no_credentials",
        f"Node {c.NODE}: not captured: no Kubernetes credentials",
    )


async def test_a_capture_that_fails_is_recorded_not_fatal(kmock: Any, settings: Settings, store: SQLiteStore) -> None:
    kmock["get"] << 403
    engine = _engine(settings, store, c.kube(kmock))
    assert engine.evidence is not None
    await _post(engine, store, _alert("KubePersistentVolumeFillingUp"))
    await engine.evidence.drain()
    [record] = await store.evidence(await _incident(store))
    assert record.outcome == "failed" and "forbidden (403)" in record.summary
    assert record.content is not None and any("RBAC" in e for e in record.content["errors"])


async def test_evidence_switched_off_asks_for_nothing(
    kmock: Any, make_settings: Callable[..., Settings], store: SQLiteStore
) -> None:
    c.populate(kmock)
    engine = _engine(make_settings(evidence={"enabled": False}), store, c.kube(kmock))
    assert engine.evidence is None
    await _post(engine, store, _alert("KubePodCrashLooping"))
    assert await store.evidence(await _incident(store)) == [] and list(kmock) == []


class _ClaimFailsOnce:
    """The real store, except that the first claim fails with an error nobody expects (a bug, say)."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.failed = False

    async def claim_evidence(self, limit: int) -> Any:
        if not self.failed:
            self.failed = True
            raise RuntimeError("an unexpected bug")
        return await self.inner.claim_evidence(limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_failing_worker_is_logged_counted_and_started_again(
    kmock: Any, settings: Settings, store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    c.populate(kmock)
    counted = Counted()
    broken = _ClaimFailsOnce(store)
    engine = build(settings, broken, clock=FixedClock(c.NOW), kube=c.kube(kmock), report=counted)  # type: ignore[arg-type]
    await _post(engine, store, _alert("KubePodCrashLooping"))
    engine.start()
    try:
        id = await _incident(store)

        async def captured() -> bool:
            return [r.status for r in await store.evidence(id)] == [EvidenceStatus.DONE]

        await eventually(captured, "the evidence, after the worker was started again", seconds=20)
        assert engine.failed is not None and not engine.failed.done()  # the engine itself goes on
    finally:
        await engine.stop()
    assert counted.value("receiver_evidence_worker_restarts_total") == 1
    [record] = [r for r in caplog.records if r.levelname == "ERROR" and "evidence worker failed" in r.getMessage()]
    assert record.exc_info is not None and "an unexpected bug" in str(record.exc_info[1])


async def test_the_incident_api_shows_the_evidence(
    kmock: Any, aiohttp_client: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    c.populate(kmock)
    (tmp_path / "none").mkdir()
    settings = make_settings(api={"token": TOKEN}, remediation={"playbook_dirs": [str(tmp_path / "none")]})
    app = create_app(
        settings, registry=CollectorRegistry(), clock=FixedClock(c.NOW), engine="inline", kube=c.kube(kmock)
    )
    client = await aiohttp_client(app)
    posted = await client.post("/api/v1/alerts", data=_alert("KubePodCrashLooping"))
    assert posted.status == 200

    async def evidence() -> Any:
        listed = await (await client.get("/api/v1/incidents", headers=AUTH)).json()
        if not listed["incidents"]:
            return None
        id = listed["incidents"][0]["id"]
        found = await (await client.get(f"/api/v1/incidents/{id}/evidence", headers=AUTH)).json()
        return (id, found["evidence"]) if found["evidence"] and found["evidence"][0]["status"] == "done" else None

    id, [full] = await eventually(evidence, "the incident's evidence")
    detail = await (await client.get(f"/api/v1/incidents/{id}", headers=AUTH)).json()
    [summary] = detail["evidence"]
    assert summary == {k: v for k, v in full.items() if k != "content"}
    assert (summary["alertname"], summary["outcome"], summary["reason"]) == (
        "KubePodCrashLooping",
        "captured",
        "incident opened",
    )
    assert summary["episode"] == c.FIRST_ALERT.isoformat()
    assert "image shop/web:1.4.2 -> shop/web:1.4.3 rolled out 4 minutes" in summary["summary"]
    assert [e["text"] for e in detail["timeline"] if e["kind"] == "evidence"] == [
        f"evidence captured: {summary['summary']}"
    ]
    assert full["content"]["logs"]["previous"]["lines"] and c.SECRET not in json.dumps(full)
    assert (await client.get(f"/api/v1/incidents/{id}/evidence")).status == 401
    assert timedelta(0) <= c.NOW - c.FIRST_ALERT


async def test_a_playbook_that_triggers_asks_for_its_alerts_evidence(
    kmock: Any, make_settings: Callable[..., Settings], store: SQLiteStore, tmp_path: Path
) -> None:
    c.populate(kmock)
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "crashloop.yaml").write_text(FAST_CRASHLOOP)
    settings = make_settings(remediation={"playbook_dirs": [str(playbooks)]}, evidence={"per_incident": 1})
    engine = _engine(settings, store, c.kube(kmock))
    assert engine.evidence is not None
    await _post(engine, store, _alert("KubePodCrashLooping"))  # opens the incident
    await _post(
        engine, store, _alert("KubePodCrashLooping", namespace="shop", pod="web-7d4b9c6f5-k2v9w", container="web")
    )
    await engine.evidence.drain()
    records = await store.evidence(await _incident(store))
    assert [(r.request.labels["pod"], r.request.reason, r.outcome) for r in records] == [
        (c.POD, "incident opened", "captured"),  # its run asked for the same episode: once
        ("web-7d4b9c6f5-k2v9w", "playbook crashloop triggered", "failed"),  # joined the open incident; no such pod
    ]
    assert records[1].content is not None and "not found (404)" in records[1].content["errors"][0]


def _crashloop_settings(make_settings: Callable[..., Settings], tmp_path: Path, **evidence: Any) -> Settings:
    """Settings whose one playbook deletes the crash-looping pod (``FAST_CRASHLOOP``)."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir(exist_ok=True)
    (playbooks / "crashloop.yaml").write_text(FAST_CRASHLOOP)
    return make_settings(remediation={"playbook_dirs": [str(playbooks)]}, evidence=evidence)


DELETED = [("GET", f"/api/v1/namespaces/shop/pods/{c.POD}"), ("DELETE", f"/api/v1/namespaces/shop/pods/{c.POD}")]
"""What ``delete_pod`` asks of the pod: is it there, then delete it."""


def _pod_requests(emulator: Any) -> list[tuple[str, str]]:
    """(method, path) of every request about the crash-looping pod (itself and its logs), in order of receipt."""
    return [(r.method, str(r.url.path)) for r in list(emulator) if f"/pods/{c.POD}" in str(r.url.path)]


async def test_a_playbook_deletes_the_pod_only_after_its_evidence_is_stored(
    kmock: Any, make_settings: Callable[..., Settings], store: SQLiteStore, tmp_path: Path
) -> None:
    c.populate(kmock, logs=False)

    async def slow_logs(request: Any) -> bytes:  # the capture reads the logs slowly: the playbook could win
        await asyncio.sleep(0.2)
        return (c.PREVIOUS_LOG if request.params.get("previous") == "true" else c.CURRENT_LOG).encode()

    kmock[kmock.subresource("log")] << slow_logs
    settings = _crashloop_settings(make_settings, tmp_path)
    engine = build(settings, store, clock=FixedClock(c.NOW), kube=c.kube(kmock), report=Counted(), timer=VirtualTimer())
    assert engine.evidence is not None
    await _post(engine, store, _alert("KubePodCrashLooping"))
    await asyncio.gather(engine.runner.drain(), engine.evidence.drain())  # woken together, as the engine does
    requests = [(r.method, str(r.url.path)) for r in list(kmock)]
    assert requests[-1] == DELETED[-1]  # after every read of the capture, the events it reads last included
    assert requests.count(("GET", f"/api/v1/namespaces/shop/pods/{c.POD}/log")) == 2
    [record] = await store.evidence(await _incident(store))
    assert (record.status, record.outcome) == (EvidenceStatus.DONE, "captured")
    assert record.content is not None and record.content["logs"]["previous"]["lines"]
    [run] = await store.runs()
    assert (run.status, run.reason) == (RunStatus.SUCCEEDED, "")


async def test_a_run_waits_for_its_evidence_at_most_the_bound_then_goes_on_and_says_so(
    kmock: Any,
    make_settings: Callable[..., Settings],
    store: SQLiteStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    c.populate(kmock)
    settings = _crashloop_settings(make_settings, tmp_path, deadline="1s")
    engine = build(settings, store, clock=FixedClock(c.NOW), kube=c.kube(kmock), report=Counted(), timer=VirtualTimer())
    assert engine.evidence is not None and engine.evidence.bound == 1 + STORE_MARGIN_SECONDS
    await _post(engine, store, _alert("KubePodCrashLooping"))  # its evidence is asked; no worker ever captures it
    loop = asyncio.get_running_loop()
    started = loop.time()
    await engine.runner.drain()
    waited = loop.time() - started
    assert engine.evidence.bound <= waited < engine.evidence.bound + 2.0
    why = f"not stored within {engine.evidence.bound:g}s"
    [run] = await store.runs()
    assert (run.status, run.reason) == (RunStatus.SUCCEEDED, f"went on without its evidence ({why})")
    assert _pod_requests(kmock) == DELETED  # the playbook's read and delete: nothing captured
    found = await store.incident(await _incident(store), 100)
    assert found is not None
    assert f"run {run.id} goes on without its evidence ({why})" in [e.text for e in found[1]]
    [warned] = [r for r in caplog.records if r.getMessage() == "run goes on without its evidence"]
    assert warned.levelname == "WARNING" and warned.__dict__["why"] == why


async def test_with_evidence_off_a_run_waits_for_nothing(
    kmock: Any, make_settings: Callable[..., Settings], store: SQLiteStore, tmp_path: Path
) -> None:
    c.populate(kmock)
    settings = _crashloop_settings(make_settings, tmp_path, enabled=False)
    engine = build(settings, store, clock=FixedClock(c.NOW), kube=c.kube(kmock), report=Counted(), timer=VirtualTimer())
    assert engine.evidence is None
    await _post(engine, store, _alert("KubePodCrashLooping"))
    async with asyncio.timeout(STORE_MARGIN_SECONDS):  # far less than any bound
        await engine.runner.drain()
    assert _pod_requests(kmock) == DELETED  # the playbook's read and delete: nothing captured
    [run] = await store.runs()
    assert (run.status, run.reason) == (RunStatus.SUCCEEDED, "")


async def test_evidence_the_store_refuses_is_counted_as_failed_and_captured_again_later(
    settings: Settings, store: SQLiteStore
) -> None:
    report = Counted()
    engine = _engine(settings, store, Kube(None, dry_run=True), report)
    assert engine.evidence is not None
    stored = store.store_evidence

    async def refuse(result: Any) -> None:
        raise StoreError("database or disk is full")

    store.store_evidence = refuse  # type: ignore[method-assign]
    await _post(engine, store, _alert("KubeNodeNotReady"))
    await engine.evidence.drain()
    assert report.value("receiver_evidence_captures_total", outcome="failed") == 1  # visible: the chart alerts
    [record] = await store.evidence(await _incident(store))
    assert record.status.value != "done"  # left claimed, not lost: the next start captures it again
    store.store_evidence = stored  # type: ignore[method-assign]
    assert await store.release_evidence() == 1
