"""kube-prometheus-stack's alerts, routed as its Alertmanager routes them, meet the shipped playbooks in a cluster.

A real Alertmanager 0.25 runs the chart's default routing and inhibit rules (tests/corpus/alertmanager.yml:
group by namespace, 30s group wait) and delivers corpus alerts (labels exactly as kube-prometheus-stack's
rules yield them) to a real ``receiver serve`` with the shipped ``playbooks/`` unchanged, whose kubeconfig
points at kmock's KubernetesEmulator holding tests/world.py's cluster. The engine's playbook time is virtual
(``--timer virtual``): the crash-loop playbook's six-minute watch passes at once, its durations untouched.

Every shipped playbook acts on its alert; the writes the cluster receives are exactly the expected ones
(the node's cordon only once a person approves); the warning twin of a critical volume alert is inhibited
by Alertmanager and acted on by nobody; the node's alert is an incident of its own, not the monitoring
namespace's; Watchdog is kept out of incidents.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from receiver.evidence.content import ago
from tests import world
from tests.corpus import CorpusAlert, alert, alertmanager_config, prometheus_alert
from tests.e2e.harness import eventually
from tests.e2e.test_remediation_e2e import kubeconfig

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEB_POD = "web-7d4b9c6f5-x2x9z"


def corpus_alerts() -> list[CorpusAlert]:
    """What kube-prometheus-stack's Prometheus raises about tests/world.py's cluster."""
    return [
        alert("KubePodCrashLooping", namespace="shop", pod=WEB_POD, container="web"),
        alert("KubeContainerWaiting", namespace="shop", pod="api-59b7c6d8f-h2lqp", container="api"),
        alert("KubeDeploymentRolloutStuck", namespace="shop", deployment="cart"),
        alert("KubeHpaMaxedOut", namespace="shop", horizontalpodautoscaler="checkout"),
        alert("KubePersistentVolumeFillingUp", "critical", namespace="shop", persistentvolumeclaim="data-postgres-0"),
        alert("KubePersistentVolumeFillingUp", "warning", namespace="shop", persistentvolumeclaim="data-postgres-0"),
        alert("KubeNodeNotReady", node="worker-2"),
        alert("Watchdog"),
    ]


def writes(emulator: Any) -> list[tuple[str, str, str]]:
    """Every request that changed the cluster: (method, resource, name), sorted."""
    return sorted(
        (r.method, str(r.resource.plural) if r.resource else "", r.name or "")
        for r in emulator
        if r.method in ("POST", "PUT", "PATCH", "DELETE")
    )


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_kube_prometheus_alerts_meet_the_shipped_playbooks(
    processes: dict[str, Any], kmock: Any, tmp_path: Path
) -> None:
    now = datetime.now(UTC)  # the receiver's clock: ages of rollouts are measured against it
    world.populate(kmock, now)
    settings = {"api": {"token": TOKEN}, "remediation": {"playbook_dirs": [str(ROOT / "playbooks")]}}
    receiver = processes["receiver"](settings)
    receiver.args = ["--timer", "virtual"]
    receiver.env["KUBECONFIG"] = str(kubeconfig(tmp_path / "kubeconfig", str(kmock.url).rstrip("/")))
    receiver.env.pop("KUBERNETES_SERVICE_HOST", None)
    await receiver.start()
    am = processes["alertmanager"]()
    await am.start(yaml.safe_load(alertmanager_config(receiver.url + "/api/v1/alerts", "e2e-token")))
    started = datetime.fromtimestamp(await am.now(), UTC)
    await am.push([prometheus_alert(a, starts_at=started) for a in corpus_alerts()])

    async def runs() -> list[dict[str, Any]]:
        async with receiver.http.get(receiver.url + "/api/v1/runs", headers=AUTH) as got:
            assert got.status == 200
            found: list[dict[str, Any]] = (await got.json())["runs"]
            return found

    async def settled(final: int) -> list[dict[str, Any]] | None:
        found = await runs()
        done = [r for r in found if r["status"] not in ("pending", "running")]
        return (
            found
            if len(found) == 6 and len(done) == 6 and sum(r["finishedAt"] is not None for r in found) == final
            else None
        )

    # Alertmanager waits its 30s, then every playbook runs; the node's waits for a person.
    found = await eventually(lambda: settled(5), "five runs to end and one to await approval", 120)
    by_playbook = {r["playbook"]: r for r in found}
    assert by_playbook["kube-node-not-ready"]["status"] == "awaiting_approval"
    assert ("PATCH", "nodes", "worker-2") not in writes(kmock)
    node_run = by_playbook["kube-node-not-ready"]["id"]
    body = {"actor": "alice", "reason": "worker-2 is gone: keep pods off it when it comes back"}
    async with receiver.http.post(f"{receiver.url}/api/v1/runs/{node_run}/approve", json=body, headers=AUTH) as got:
        assert got.status == 200, await got.text()
    found = await eventually(lambda: settled(6), "the approved run to end", 60)

    assert {r["playbook"]: r["status"] for r in found} == {
        "kube-pod-crash-looping": "succeeded",
        "kube-container-waiting": "succeeded",
        "kube-deployment-rollout-stuck": "succeeded",
        "kube-hpa-maxed-out": "succeeded",
        "kube-persistent-volume-filling-up": "succeeded",
        "kube-node-not-ready": "succeeded",
    }
    assert all(not r["dryRun"] for r in found)
    assert writes(kmock) == sorted(
        [
            ("DELETE", "pods", WEB_POD),  # the crash-looping pod
            ("PATCH", "deployments", "web"),  # its pods kept crashing after a 20-minute-old rollout: rolled back
            ("PATCH", "deployments", "api"),  # an image that cannot be pulled, rolled out 70 minutes ago
            ("PATCH", "deployments", "cart"),  # a stuck rollout
            ("PATCH", "horizontalpodautoscalers", "checkout"),  # maxReplicas 8 -> 12
            ("PATCH", "persistentvolumeclaims", "data-postgres-0"),  # 10Gi -> 15Gi, once: the warning is inhibited
            ("PATCH", "nodes", "worker-2"),  # cordoned, after approval
        ]
    )
    # Evidence first: the crash-looping pod and both its logs were read before its playbook deleted it.
    web_pod = [(r.method, str(r.url.path)) for r in list(kmock) if str(r.url.path).endswith((WEB_POD, "/log"))]
    deleted = web_pod.index(("DELETE", f"/api/v1/namespaces/shop/pods/{WEB_POD}"))
    assert web_pod[:deleted].count(("GET", f"/api/v1/namespaces/shop/pods/{WEB_POD}/log")) == 2, web_pod
    objects = {key: kmock.objects[kmock.resource(*key[0]), key[1], key[2]] for key in world.objects(now)}
    image = {
        name: objects[world.DEPLOYMENTS, "shop", name]["spec"]["template"]["spec"]["containers"][0]["image"]
        for name in ("web", "api", "cart")
    }
    assert image == {
        "web": "registry.example.com/shop/web:1.4.2",
        "api": "registry.example.com/shop/api:1.9.0",
        "cart": "registry.example.com/shop/cart:2.2.0",
    }
    assert objects[world.HPAS, "shop", "checkout"]["spec"]["maxReplicas"] == 12
    assert objects[world.PVCS, "shop", "data-postgres-0"]["spec"]["resources"]["requests"]["storage"] == "15Gi"
    assert objects[world.NODES, None, "worker-2"]["spec"]["unschedulable"] is True

    crash_run = by_playbook["kube-pod-crash-looping"]["id"]
    async with receiver.http.get(f"{receiver.url}/api/v1/runs/{crash_run}", headers=AUTH) as got:
        record = await got.json()
    assert [(s["name"], s["outcome"]) for s in record["steps"]] == [
        ("delete_pod", "succeeded"),
        ("watch", "succeeded"),
        ("rollback", "succeeded"),
    ]
    assert record["steps"][1]["seconds"] == 360.0  # six virtual minutes of watching
    assert record["steps"][2]["resolved"] == [
        f"Pod/shop/{WEB_POD}",
        "ReplicaSet/shop/web-7d4b9c6f5",
        "Deployment/shop/web",
    ]

    async with receiver.http.get(receiver.url + "/api/v1/incidents", headers=AUTH) as got:
        incidents = (await got.json())["incidents"]
    assert sorted((i["scope"], i["severity"], tuple(i["severityReasons"]), i["alertCount"]) for i in incidents) == [
        (
            "namespace:shop",
            "SEV1",
            ("label severity='critical' -> SEV2", "5 services affected -> SEV1"),
            5,
        ),
        ("node:worker-2", "SEV3", ("label severity='warning' -> SEV3",), 1),  # not the exporter's namespace
    ]
    shop = next(i for i in incidents if i["scope"] == "namespace:shop")
    assert shop["services"] == ["shop/api", "shop/cart", "shop/checkout", "shop/data-postgres-0", "shop/web"]
    async with receiver.http.get(receiver.url + "/api/v1/alerts", headers=AUTH) as got:
        received = {(a["labels"]["alertname"], a["labels"]["severity"]) for a in (await got.json())["alerts"]}
    assert ("Watchdog", "none") in received  # stored, in no incident: the dead man's switch watches it
    assert ("KubePersistentVolumeFillingUp", "warning") not in received  # inhibited by its critical twin

    # The evidence an on-call person looks at first, captured when the incident opened.
    async with receiver.http.get(f"{receiver.url}/api/v1/incidents/{shop['id']}/evidence", headers=AUTH) as got:
        evidence = {e["alertname"]: e for e in (await got.json())["evidence"]}
    crash = evidence["KubePodCrashLooping"]
    assert crash["reason"] == "incident opened" and crash["outcome"] == "captured", crash["summary"]
    # 20 minutes before the first alert when the receiver's clock and Alertmanager's agree; the suite's second
    # pass sets this process's and the receiver's a year ahead (libfaketime), not Alertmanager's (a Go binary).
    rolled_out = datetime.fromisoformat(world.stamp(now - timedelta(minutes=20)))
    gap = started - rolled_out
    when = f"{ago(abs(gap))} {'before' if gap >= timedelta(0) else 'after'} the first alert"
    assert crash["summary"] == (
        f"Pod shop/{WEB_POD}: CrashLoopBackOff, 9 restarts, last exit 1 (Error); image "
        f"registry.example.com/shop/web:1.4.2 -> registry.example.com/shop/web:1.4.3 rolled out {when}"
    )
    logs = crash["content"]["logs"]
    assert logs["current"]["lines"][-1] == "panic: config: FEATURE_FLAGS_URL is not set"
    assert "hunter2" not in str(crash["content"])  # the password in the logged URL is redacted
    reasons = sorted(e["reason"] for e in crash["content"]["events"])
    assert reasons == ["BackOff", "ScalingReplicaSet", "SuccessfulCreate"]
    captured = datetime.fromisoformat(crash["capturedAt"]) - datetime.fromisoformat(crash["requestedAt"])
    assert captured.total_seconds() < 10  # within the capture's deadline of the incident opening
    assert (
        "registry.example.com/shop/api:1.9.0 -> registry.example.com/shop/api:2.0.0"
        in (evidence["KubeContainerWaiting"]["summary"])
    )
