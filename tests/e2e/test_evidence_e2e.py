"""Real Alertmanager -> real ``receiver serve`` (its engine process) -> evidence read from the Kubernetes emulator.

The emulator holds the cluster of ``tests/evidence_cluster`` (a Deployment
whose second revision crash-loops, its logs, events). Alertmanager delivers
the corpus' ``KubePodCrashLooping`` for that pod; the engine process opens an
incident, captures its evidence beside processing, and the web process shows
it in the incident (API and timeline) and counts it (the tally crosses the
engine's link), once however often Prometheus repeats the alert.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import pytest

from tests import evidence_cluster as c
from tests.corpus import prometheus_alert
from tests.e2e.harness import alertmanager_config, eventually
from tests.e2e.test_remediation_e2e import kubeconfig

TOKEN = "e2e-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_the_evidence_of_a_crash_looping_rollout_appears_in_its_incident(
    processes: dict[str, Any], kmock: Any, tmp_path: Path
) -> None:
    c.populate(kmock)
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    receiver = processes["receiver"]({"api": {"token": TOKEN}, "remediation": {"playbook_dirs": [str(playbooks)]}})
    receiver.env["KUBECONFIG"] = str(kubeconfig(tmp_path / "kubeconfig", str(kmock.url).rstrip("/")))
    receiver.env.pop("KUBERNETES_SERVICE_HOST", None)
    await receiver.start()
    am = processes["alertmanager"]()
    await am.start(alertmanager_config(receiver.url + "/api/v1/alerts"))
    crashing = prometheus_alert(
        c.CORPUS_ALERTS["KubePodCrashLooping"], starts_at=datetime.fromtimestamp(await am.now(), UTC)
    )
    for _ in range(3):  # Prometheus re-sends the firing alert on every evaluation
        await am.push([crashing])
        await asyncio.sleep(0.5)

    async def stored() -> Any:
        async with receiver.http.get(receiver.url + "/api/v1/incidents", headers=AUTH) as listed:
            incidents = (await listed.json())["incidents"]
        if not incidents:
            return None
        async with receiver.http.get(f"{receiver.url}/api/v1/incidents/{incidents[0]['id']}", headers=AUTH) as got:
            detail = await got.json()
        return detail if detail["evidence"] and detail["evidence"][0]["status"] == "done" else None

    detail = await eventually(stored, "the incident's evidence", 30)
    [evidence] = detail["evidence"]
    assert (evidence["outcome"], evidence["reason"]) == ("captured", "incident opened")
    assert evidence["summary"].startswith(f"Pod shop/{c.POD}: CrashLoopBackOff, 5 restarts, last exit 1 (Error); ")
    assert "image shop/web:1.4.2 -> shop/web:1.4.3 rolled out" in evidence["summary"]
    assert [e["text"] for e in detail["timeline"] if e["kind"] == "evidence"] == [
        f"evidence captured: {evidence['summary']}"
    ]
    async with receiver.http.get(f"{receiver.url}/api/v1/incidents/{detail['id']}/evidence", headers=AUTH) as got:
        [full] = (await got.json())["evidence"]
    logs = full["content"]["logs"]
    assert logs["current"]["lines"][-1].endswith("panic: missing config key PAYMENTS_URL")
    assert c.SECRET not in str(full) and full["content"]["owners"] == [f"ReplicaSet/{c.RS_NEW}", "Deployment/web"]

    await eventually(lambda: receiver.processed_all(am), "the receiver to process every delivery", 30)
    async with receiver.http.get(f"{receiver.url}/api/v1/incidents/{detail['id']}", headers=AUTH) as got:
        assert len((await got.json())["evidence"]) == 1  # Alertmanager's repeats asked for nothing more
    assert await receiver.metric("receiver_evidence_captures_total", outcome="captured") == 1
    pods = [r for r in list(kmock) if r.method == "GET" and str(r.url.path).endswith(f"/pods/{c.POD}")]
    assert len(pods) == 2  # the capture's read of the pod, and the owner walk's: one capture
