"""Playbook runs are recorded with the news that asks for them: once per playbook, alert and episode."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s
from prometheus_client import CollectorRegistry

from receiver.app import RUNNER, create_app
from receiver.config import Settings
from receiver.engine.runner import Runner
from receiver.incidents.book import Changes
from receiver.incidents.severity import Severity
from receiver.kube import Kube, without_retries
from receiver.metrics import Tally
from receiver.playbooks.guardrails import Limits
from receiver.playbooks.model import load_dirs
from receiver.playbooks.plan import AlertFacts, NamespacePolicy
from receiver.playbooks.runs import RunStatus, intents
from receiver.store import sqlite_tables as tables
from receiver.store.sqlite import SQLiteStore
from receiver.timer import VirtualTimer
from tests import corpus
from tests.conftest import Clock
from tests.e2e.harness import free_port
from tests.payloads import alert
from tests.test_http import Client, processed, sample
from tests.test_incidents_api import DATABASE_DOWN, post
from tests.test_kube import FAST, kube, pod, put

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = load_dirs([ROOT / "playbooks"]).playbooks
EXAMPLES = load_dirs([ROOT / "examples" / "playbooks"]).playbooks
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def runs(data_dir: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(data_dir / "receiver.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY id")]


def crashloop(starts: str = "2026-11-22T09:00:00Z", pod: str = "cart-7d9f-x") -> dict[str, Any]:
    """kube-prometheus-stack's KubePodCrashLooping for ``pod`` in shop (tests/corpus), as the webhook carries it."""
    crashing = corpus.alert("KubePodCrashLooping", namespace="shop", pod=pod, container="cart")
    return corpus.webhook_alert(crashing, starts_at=datetime.fromisoformat(starts))


FAST_CRASHLOOP = (ROOT / "examples" / "playbooks" / "delete-crashlooping-pod.yaml").read_text()


@pytest.fixture
def start(aiohttp_client: Any, make_settings: Any, clock: Clock, tmp_path: Path) -> Any:
    """An inline app whose playbooks are ``FAST_CRASHLOOP`` (and those given), acting through ``kube``."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "crashloop.yaml").write_text(FAST_CRASHLOOP)

    async def make(kube: Kube, **raw: Any) -> Client:
        raw.setdefault("remediation", {})["playbook_dirs"] = [str(playbooks)]
        settings: Settings = make_settings(**raw)
        registry = CollectorRegistry()
        app = create_app(settings, registry=registry, clock=clock, engine="inline", kube=kube, timer=VirtualTimer())
        client: Client = await aiohttp_client(app)
        client.registry = registry  # type: ignore[attr-defined]
        return client

    return make


async def settled(client: Client) -> None:
    await processed(client)
    await client.server.app[RUNNER].drain()


async def test_a_triggering_alert_records_one_run_per_episode(start: Any, tmp_path: Path) -> None:
    client = await start(Kube(None, dry_run=True))
    await post(client, crashloop())
    await post(client, crashloop())  # Alertmanager repeats it, an HA peer sends it again
    await settled(client)
    [run] = runs(tmp_path / "data")
    assert (run["playbook"], run["status"], run["incident"]) == ("crashloop", RunStatus.SUCCEEDED, "INC-20261122-0001")
    assert run["dry_run"] == 1  # no credentials: a dry-run, and it says so
    [step] = json.loads(run["steps"])
    assert (step["name"], step["outcome"], step["dry_run"]) == ("delete_pod", "succeeded", True)
    assert "no Kubernetes credentials" in step["reason"]
    steps = json.loads(run["plan"])
    assert steps[0] == {
        "name": "delete_pod",
        "action": "delete_pod",
        "inputs": {"kind": "Pod", "namespace": "shop", "name": "cart-7d9f-x", "timeout_seconds": 60.0},
        "when": None,
        "refused": None,
    }
    assert json.loads(run["alert"])["labels"]["pod"] == "cart-7d9f-x"
    await post(client, crashloop(starts="2026-11-22T09:20:00Z"))  # it fires again: a new episode
    await settled(client)
    assert [r["playbook"] for r in runs(tmp_path / "data")] == ["crashloop", "crashloop"]


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_a_crash_looping_pod_is_deleted_exactly_once(start: Any, kmock: Any, tmp_path: Path) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-7d9f-x", pod("cart-7d9f-x"))
    client = await start(kube(kmock))
    for _ in range(3):  # the first notification, a repeat, an HA peer's copy
        await post(client, crashloop())
        await settled(client)
    assert [r.method for r in kmock["delete"]] == ["DELETE"]
    [run] = runs(tmp_path / "data")
    assert (run["status"], run["dry_run"]) == (RunStatus.SUCCEEDED, 0), run["reason"]
    assert json.loads(run["steps"])[0]["after"] == {"deleted": True}
    assert sample(client, "receiver_playbook_runs_total", playbook="crashloop", result="succeeded") == 1
    assert sample(client, "receiver_playbook_actions_total", action="delete_pod", result="succeeded") == 1
    assert sample(client, "receiver_playbook_action_duration_seconds_count", action="delete_pod") == 1
    timeline = (await (await client.get(f"/api/v1/incidents/{run['incident']}")).json())["timeline"]
    assert [(e["kind"], e["actor"], e["text"]) for e in timeline if e["kind"] == "remediation"] == [
        ("remediation", "playbook crashloop", f"run {run['id']} started"),
        ("remediation", "playbook crashloop", f"run {run['id']} succeeded"),
    ]


async def test_a_hostile_label_is_refused_and_recorded_never_executed(start: Any, tmp_path: Path) -> None:
    client = await start(Kube(None, dry_run=True))
    await post(client, crashloop(pod="x;rm -rf /"))  # a real alert's shape, a hostile pod name
    await settled(client)
    [run] = runs(tmp_path / "data")
    assert run["status"] == RunStatus.BLOCKED and run["reason"].startswith("refused: step 'delete_pod': name")
    assert json.loads(run["steps"]) == []
    assert sample(client, "receiver_guardrail_blocks_total", reason="refused") == 1
    assert sample(client, "receiver_playbook_runs_total", playbook="crashloop", result="blocked") == 1


async def test_conditions_see_the_incident_as_it_is_when_the_run_starts(start: Any, tmp_path: Path) -> None:
    steps = """
    - name: worst
      when: incident.severity == "SEV1"
      action: delete_pod
      target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.pod }}"}
    - name: its_own
      when: incident.severity == SEVERITY and incident.status == "triggered" and incident.id.startswith("INC-")
      action: delete_pod
      target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.pod }}"}
"""
    client = await start(Kube(None, dry_run=True))
    await post(client, crashloop())
    await settled(client)
    [first] = runs(tmp_path / "data")
    severity = (await (await client.get(f"/api/v1/incidents/{first['incident']}")).json())["severity"]
    playbook = FAST_CRASHLOOP.split("  steps:")[0].replace("name: crashloop", "name: by-severity")
    (tmp_path / "playbooks" / "by-severity.yaml").write_text(
        playbook + "  steps:" + steps.replace("SEVERITY", f'"{severity}"')
    )
    client = await start(Kube(None, dry_run=True))
    await post(client, crashloop(pod="cart-7d9f-y"))
    await settled(client)
    [run] = [r for r in runs(tmp_path / "data") if r["playbook"] == "by-severity"]
    assert severity != "SEV1"
    assert [(s["name"], s["outcome"]) for s in json.loads(run["steps"])] == [
        ("worst", "skipped"),
        ("its_own", "succeeded"),
    ], run["reason"]


async def test_symptoms_and_untriggered_alerts_record_no_run(start: Any, tmp_path: Path) -> None:
    client = await start(Kube(None, dry_run=True), incidents={"suppression": [DATABASE_DOWN]})
    await post(client, alert("DatabaseDown", namespace="data", cluster="eu1"))
    await post(client, alert("HighErrorRate", namespace="api", cluster="eu1", deployment="api", severity="critical"))
    await post(client, alert("SomethingElse", namespace="shop"))
    assert runs(tmp_path / "data") == []


def test_intents_are_pure() -> None:
    """The example high-error-rate triggers on HighErrorRate (an alert of your own) at SEV2 or worse."""
    every = [*PLAYBOOKS, *EXAMPLES]
    facts = AlertFacts("f", "firing", {"alertname": "HighErrorRate", "namespace": "a", "deployment": "b"}, {}, NOW)
    found = intents(every, facts, NamespacePolicy(), incident="INC-1", severity=Severity.SEV1, symptom=False, now=NOW)
    assert [(i.playbook, i.episode, i.incident) for i in found] == [("high-error-rate", NOW, "INC-1")]
    assert (
        intents(every, facts, NamespacePolicy(), incident="INC-1", severity=Severity.SEV1, symptom=True, now=NOW) == []
    )
    assert intents(every, facts, NamespacePolicy(), incident=None, severity=Severity.SEV3, symptom=False, now=NOW) == []


APPROVAL = FAST_CRASHLOOP.replace("metadata: {name: crashloop}", "metadata: {name: careful}").replace(
    "  steps:", "  guardrails: {approval: required}\n  steps:"
)
TOKEN = {"Authorization": "Bearer api-token-0123456789"}


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_a_run_that_needs_approval_waits_then_runs_when_approved(start: Any, kmock: Any, tmp_path: Path) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-7d9f-x", pod("cart-7d9f-x"))
    (tmp_path / "playbooks" / "crashloop.yaml").write_text(APPROVAL)
    client = await start(kube(kmock), api={"token": "api-token-0123456789"})
    await post(client, crashloop())
    await settled(client)
    listed = await (await client.get("/api/v1/runs?status=awaiting_approval", headers=TOKEN)).json()
    [run] = listed["runs"]
    assert (run["playbook"], run["status"]) == ("careful", "awaiting_approval") and list(kmock["delete"]) == []
    approved = await client.post(f"/api/v1/runs/{run['id']}/approve", json={"actor": "alice"}, headers=TOKEN)
    assert approved.status == 200 and (await approved.json())["reason"] == "approved by alice"
    await settled(client)
    detail = await (await client.get(f"/api/v1/runs/{run['id']}", headers=TOKEN)).json()
    assert detail["status"] == "succeeded" and detail["steps"][0]["after"] == {"deleted": True}
    assert [r.method for r in kmock["delete"]] == ["DELETE"]
    again = await client.post(f"/api/v1/runs/{run['id']}/approve", headers=TOKEN)
    assert again.status == 409 and "only a run awaiting approval" in (await again.json())["error"]


async def test_a_rejected_run_never_runs_and_errors_are_json(start: Any, tmp_path: Path) -> None:
    (tmp_path / "playbooks" / "crashloop.yaml").write_text(APPROVAL)
    client = await start(Kube(None, dry_run=True), api={"token": "api-token-0123456789"})
    await post(client, crashloop())
    await settled(client)
    [run] = (await (await client.get("/api/v1/runs", headers=TOKEN)).json())["runs"]
    rejected = await client.post(f"/api/v1/runs/{run['id']}/reject", json={"reason": "not now"}, headers=TOKEN)
    assert (await rejected.json())["status"] == "rejected"
    assert (await rejected.json())["reason"] == "rejected by api: not now"
    assert (await client.post("/api/v1/runs/999/approve", headers=TOKEN)).status == 404
    assert (await client.get("/api/v1/runs/abc", headers=TOKEN)).status == 404
    assert (await client.post(f"/api/v1/runs/{run['id']}/approve")).status == 401
    assert (await client.get("/api/v1/runs?status=bogus", headers=TOKEN)).status == 400


async def test_a_run_left_running_by_a_stopped_engine_is_interrupted_not_repeated(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    try:
        crashing = corpus.alert("KubePodCrashLooping")
        facts = AlertFacts("f", "firing", crashing.labels, crashing.annotations, NOW)
        [intent] = intents(PLAYBOOKS, facts, NamespacePolicy(), incident=None, severity=None, symptom=False, now=NOW)
        await store.record(Changes(), [intent])
        [row] = await store.pending_runs()
        await store.start_run(row.id, NOW, dry_run=False, reason="")
        counted: list[Tally] = []
        reported = asyncio.Event()

        def report(tally: Tally) -> None:
            counted.append(tally)
            reported.set()

        runner = Runner(store, Kube(None, dry_run=True), lambda _: Limits(), lambda: NOW, report)
        task = asyncio.create_task(runner.run())
        await asyncio.wait_for(reported.wait(), 10)
        task.cancel()
        found = await store.run(row.id)
        assert found is not None and found.status == RunStatus.INTERRUPTED.value
        assert counted[0].runs == [("kube-pod-crash-looping", "interrupted")]
        assert await store.pending_runs() == []  # and it is not started again
    finally:
        await store.close()


async def test_a_run_nobody_approves_in_time_is_rejected(start: Any, tmp_path: Path, clock: Clock) -> None:
    (tmp_path / "playbooks" / "crashloop.yaml").write_text(APPROVAL)
    client = await start(Kube(None, dry_run=True), api={"token": "api-token-0123456789"})
    await post(client, crashloop())
    await settled(client)
    clock.advance(minutes=14)
    await settled(client)
    [run] = runs(tmp_path / "data")
    assert run["status"] == RunStatus.AWAITING_APPROVAL
    clock.advance(minutes=2)
    await settled(client)
    [run] = runs(tmp_path / "data")
    assert (run["status"], run["reason"]) == (RunStatus.REJECTED, "nobody approved it within 0:15:00")
    assert sample(client, "receiver_playbook_runs_total", playbook="careful", result="rejected") == 1
    late = await client.post(f"/api/v1/runs/{run['id']}/approve", headers=TOKEN)
    assert late.status == 409


async def test_the_circuit_breaker_opens_after_failures_in_a_row_and_a_person_closes_it(
    start: Any, tmp_path: Path, clock: Clock
) -> None:
    nowhere = k8s.ApiClient(without_retries(k8s.Configuration(host=f"http://127.0.0.1:{free_port()}")))  # refused
    client = await start(Kube(nowhere, retry=FAST), api={"token": "api-token-0123456789"})
    for minute in range(4):
        await post(client, crashloop(starts=f"2026-11-22T09:{10 + minute}:00Z"))  # a new episode each time
        await settled(client)
        clock.advance(minutes=11)  # past the cooldown
    statuses = [(r["status"], r["reason"][:12]) for r in runs(tmp_path / "data")]
    assert [s for s, _ in statuses] == ["failed", "failed", "failed", "blocked"]
    assert statuses[3][1] == "circuit_open"
    assert (await client.get("/metrics")).status == 200  # the breaker's state is read at scrape time
    assert sample(client, "receiver_playbook_circuit_open", playbook="crashloop") == 1
    assert (await client.post("/api/v1/playbooks/nope/reset", headers=TOKEN)).status == 404
    reset = await client.post("/api/v1/playbooks/crashloop/reset", json={"actor": "alice"}, headers=TOKEN)
    assert reset.status == 200
    assert (await client.get("/metrics")).status == 200
    assert sample(client, "receiver_playbook_circuit_open", playbook="crashloop") == 0
    await post(client, crashloop(starts="2026-11-22T09:20:00Z"))
    await settled(client)
    assert runs(tmp_path / "data")[-1]["status"] == RunStatus.FAILED  # it ran again (and failed again)
    assert sample(client, "receiver_guardrail_blocks_total", reason="circuit_open") == 1


async def test_runs_a_guardrail_blocks_together_are_recorded_together(start: Any, tmp_path: Path) -> None:
    client = await start(Kube(None, dry_run=True), remediation={"guardrails": {"max_runs_per_hour": 1}})
    pods = [crashloop(pod=f"cart-{i}") for i in range(4)]
    await post(client, *pods)  # one notification: four runs asked for at once
    await settled(client)
    statuses = sorted(r["status"] for r in runs(tmp_path / "data"))
    assert statuses == ["blocked", "blocked", "blocked", "succeeded"]
    assert sample(client, "receiver_guardrail_blocks_total", reason="rate_limit") == 3
    timeline = (await (await client.get("/api/v1/incidents/INC-20261122-0001")).json())["timeline"]
    blocked = [e["text"] for e in timeline if e["kind"] == "remediation" and "blocked" in e["text"]]
    assert len(blocked) == 1 and blocked[0].startswith("3 runs blocked (")
    assert "rate_limit: playbook 'crashloop' ran 1 times in the last hour (limit 1)" in blocked[0]


async def test_resets_stored_as_fake_runs_move_to_their_own_table(tmp_path: Path) -> None:
    """A version-4 database kept a breaker reset as a run with status breaker_reset; version 5 moves it out."""
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    await store.close()
    failed = (
        "INSERT INTO runs (playbook, fingerprint, episode, status, reason, alert, plan, steps, created_at, finished_at)"
        " VALUES ('crashloop', ?, ?, 'failed', '', '{}', '[]', '[]', ?, ?)"
    )
    reset = (
        "INSERT INTO runs (playbook, fingerprint, episode, status, reason, alert, plan, steps, created_at, finished_at)"
        " VALUES (?, '', ?, 'breaker_reset', ?, '{}', '[]', '[]', ?, ?)"
    )
    with sqlite3.connect(tmp_path / "r.db") as db:  # back to version 4, as it stored resets
        db.executescript(
            "DROP TABLE breaker_resets; DROP TABLE evidence; DROP TABLE watchdog;"
            " DROP TABLE outbox; DROP TABLE notify_targets; DROP TABLE update_cadence; DROP TABLE escalations;"
            " PRAGMA user_version = 4;"
        )
        for at in (1, 2, 3):
            db.execute(failed, (f"f{at}", at, at, at))
        db.execute(reset, ("crashloop", 4, "circuit breaker reset by alice: fixed the image", 4, 4))
        db.execute(reset, ("other", 5, "circuit breaker reset by bob", 5, 5))
        db.execute(failed, ("f6", 6, 6, 6))
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    try:
        assert await store.failures_in_a_row("crashloop", 3) == 1  # the three before alice's reset no longer count
        assert {r.status for r in await store.runs()} == {RunStatus.FAILED}
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "r.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == tables.STATE_SCHEMA_VERSION
        assert db.execute("SELECT playbook, actor, reason, at FROM breaker_resets ORDER BY id").fetchall() == [
            ("crashloop", "alice", "fixed the image", 4),
            ("other", "bob", "", 5),
        ]
        assert db.execute("SELECT count(*) FROM runs WHERE status = 'breaker_reset'").fetchone() == (0,)


WATCHING = """\
apiVersion: receiver/v1
kind: Playbook
metadata: {name: restart-and-watch}
spec:
  trigger: {alertname: CartSlow}
  steps:
    - {name: restart, action: rollout_restart, target: {namespace: shop, name: cart}}
    - {name: watch, action: wait, duration: 1h}
"""
MARKING = """\
apiVersion: receiver/v1
kind: Playbook
metadata: {name: mark-after-settling}
spec:
  trigger: {alertname: CartDown}
  steps:
    - {name: settle, action: wait, duration: 2m}
    - name: mark
      when: steps.settle.outcome == "succeeded"
      action: annotate
      target: {namespace: shop, name: cart}
      values: {receiver/settled: "{{ steps.settle.outcome }}"}
"""


async def test_a_deferred_step_is_rendered_recorded_and_judged_when_it_runs(start: Any, tmp_path: Path) -> None:
    (tmp_path / "playbooks" / "crashloop.yaml").write_text(MARKING)
    client = await start(Kube(None, dry_run=True), api={"token": "api-token-0123456789"})
    await post(client, alert("CartDown", namespace="shop"))
    await settled(client)
    [run] = runs(tmp_path / "data")
    assert run["status"] == RunStatus.SUCCEEDED, run["reason"]
    assert [(s["name"], s["outcome"], s["seconds"]) for s in json.loads(run["steps"])] == [
        ("settle", "succeeded", 120.0),  # two virtual minutes
        ("mark", "succeeded", 0.0),
    ]
    detail = await (await client.get(f"/api/v1/runs/{run['id']}", headers=TOKEN)).json()
    mark = detail["plan"][1]
    assert "steps" in mark["deferred"] and mark["refused"] is None  # why it waited for the run
    assert mark["inputs"]["values"] == {"receiver/settled": "succeeded"}  # what it rendered to, then


async def test_a_deferred_step_on_an_object_another_run_is_busy_with_fails(start: Any, tmp_path: Path) -> None:
    (tmp_path / "playbooks" / "crashloop.yaml").write_text(MARKING)
    (tmp_path / "playbooks" / "watch.yaml").write_text(WATCHING)
    client = await start(Kube(None, dry_run=True))
    await post(client, alert("CartSlow", namespace="shop"), alert("CartDown", namespace="shop"))
    await settled(client)
    found = {r["playbook"]: r for r in runs(tmp_path / "data")}
    marking, watching = found["mark-after-settling"], found["restart-and-watch"]
    assert watching["status"] == RunStatus.SUCCEEDED  # admitted together: the marking run named no object yet
    assert marking["status"] == RunStatus.FAILED
    assert marking["reason"] == (
        "step 'mark': target_busy: Deployment/shop/cart: another run is busy with it"
    )  # two minutes in, the other run still watched for its hour
    assert json.loads(marking["plan"])[1]["inputs"] == {}  # never rendered into the record: it did not act
    assert sample(client, "receiver_guardrail_blocks_total", reason="target_busy") == 1
