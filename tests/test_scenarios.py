"""What an on-call engineer would write down, from kube-prometheus's own alerts (the corpus).

Each scenario delivers corpus alerts as Alertmanager groups them (one notification per namespace, the
Watchdog on its own route) through the processor and a real store, and asserts the incidents: their
scopes, affected services (subjects, never the exporter), severities and the reasons given for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from receiver.incidents.book import Incident
from receiver.incidents.severity import Severity
from receiver.store import AlertQuery, IncidentQuery
from receiver.store.sqlite import SQLiteStore
from tests.conftest import T0
from tests.corpus import CorpusAlert, alert
from tests.delivering import deliver, processor

NODE = "ip-10-0-1-12.ec2.internal"
WARNING = "label severity='warning' -> SEV3"


async def incidents(store: SQLiteStore) -> dict[str, Incident]:
    return {i.scope: i for i in await store.incidents(IncidentQuery())}


def reasons(incident: Incident) -> tuple[str, ...]:
    assert incident.classification is not None
    return incident.classification.reasons


def crash_looping_rollout(deployment: str, pods: Sequence[str]) -> list[CorpusAlert]:
    """A rollout whose new pods crash: the pods crash-loop and are not ready, the rollout is stuck."""
    return [
        *(alert("KubePodCrashLooping", namespace="shop", pod=p, container=deployment) for p in pods[:2]),
        *(alert("KubePodNotReady", namespace="shop", pod=p) for p in pods[:2]),
        alert("KubeContainerWaiting", namespace="shop", pod=pods[2], container=deployment),
        alert("KubeDeploymentReplicasMismatch", namespace="shop", deployment=deployment),
        alert("KubeDeploymentRolloutStuck", namespace="shop", deployment=deployment),
        alert("CPUThrottlingHigh", namespace="shop", pod=pods[0], container=deployment),
    ]


WEB = crash_looping_rollout("web", ["web-6b8f7d9c4-k7m2p", "web-6b8f7d9c4-x9zq2", "web-6b8f7d9c4-p4r8t"])
CHECKOUT = crash_looping_rollout("checkout", ["checkout-5c8d7b6f9d-kq4lz", "checkout-5c8d7b6f9d-b7tvn", "checkout-0"])


async def test_a_crash_looping_rollout_is_one_sev3_incident_of_one_service(store: SQLiteStore) -> None:
    """Eight alerts about one deployment, from kube-state-metrics and the kubelet: one service, no cascade."""
    await deliver(store, processor(store), T0, WEB)
    [incident] = (await incidents(store)).values()
    assert incident.scope == "namespace:shop"
    assert incident.services == {"shop/web"}  # not kube-state-metrics' and the kubelet's services
    assert (incident.severity, incident.cascade, incident.firing) == (Severity.SEV3, False, len(WEB))
    assert reasons(incident) == (WARNING,)


async def test_a_rollout_failing_in_two_deployments_is_a_cascade_of_warnings_and_sev2_not_sev1(
    store: SQLiteStore,
) -> None:
    await deliver(store, processor(store), T0, WEB + CHECKOUT)
    [incident] = (await incidents(store)).values()
    assert incident.services == {"shop/web", "shop/checkout"}
    assert incident.cascade and incident.severity is Severity.SEV2
    assert reasons(incident) == (WARNING, "cascade -> SEV2 (at most one level above its worst alert's SEV3)")


async def test_a_node_going_not_ready_is_its_own_incident_and_its_pods_stay_with_their_namespaces(
    store: SQLiteStore,
) -> None:
    proc = processor(store)
    await deliver(
        store,
        proc,
        T0,
        [
            alert("KubeNodeNotReady", node=NODE),
            alert("KubeNodeUnreachable", node=NODE),
            # its node-exporter's target is down: kube-prometheus' TargetDown for the monitoring namespace
            alert(
                "TargetDown",
                namespace="monitoring",
                job="node-exporter",
                service="kube-prometheus-stack-prometheus-node-exporter",
            ),
        ],
    )
    await deliver(
        store,
        proc,
        T0 + timedelta(minutes=1),
        [
            alert("KubePodNotReady", namespace="shop", pod="web-7d4b9c6f5-x2x9z"),
            alert("KubePodNotReady", namespace="shop", pod="cart-0"),
            alert("KubePodNotReady", namespace="payments", pod="api-5c8d7b6f9d-kq4lz"),
        ],
    )
    found = await incidents(store)
    assert set(found) == {f"node:{NODE}", "namespace:shop", "namespace:payments", "namespace:monitoring"}
    node = found[f"node:{NODE}"]
    assert node.title == f"KubeNodeNotReady in node {NODE}" and node.firing == 2
    assert node.services == {f"node/{NODE}"}  # the node, not kube-state-metrics in monitoring
    assert (node.severity, reasons(node)) == (Severity.SEV3, (WARNING,))
    assert found["namespace:shop"].services == {"shop/web", "shop/cart"}
    assert found["namespace:payments"].services == {"payments/api"}
    monitoring = found["namespace:monitoring"]
    assert monitoring.firing == 1 and not monitoring.services  # the exporter is no affected service
    assert {i.severity for i in found.values()} == {Severity.SEV3}  # warnings: nobody paged at SEV1


async def test_a_filling_volume_is_its_namespaces_incident_escalated_when_the_critical_rule_fires(
    store: SQLiteStore,
) -> None:
    proc = processor(store)
    volume = {"namespace": "shop", "persistentvolumeclaim": "data-db-0", "node": NODE}
    await deliver(store, proc, T0, [alert("KubePersistentVolumeFillingUp", variant="warning", **volume)])
    [incident] = (await incidents(store)).values()
    assert (incident.scope, incident.severity) == ("namespace:shop", Severity.SEV3)  # the claim's, not the node's
    await deliver(
        store, proc, T0 + timedelta(hours=2), [alert("KubePersistentVolumeFillingUp", variant="critical", **volume)]
    )
    [incident] = (await incidents(store)).values()
    assert incident.services == {"shop/data-db-0"} and incident.firing == 2
    assert (incident.severity, reasons(incident)) == (Severity.SEV2, ("label severity='critical' -> SEV2",))
    found = await store.incident(incident.id, timeline_limit=50)
    assert found is not None
    assert any(e.text.startswith("escalated from SEV3 to SEV2") for e in found[1])


@pytest.mark.parametrize(
    ("repeat", "hours"), [(timedelta(hours=12, minutes=5), 30), (timedelta(minutes=2), 3)], ids=["12h", "2m"]
)
async def test_watchdog_and_info_inhibitor_firing_for_hours_open_no_incident(
    store: SQLiteStore, repeat: timedelta, hours: int
) -> None:
    """Every 12h (kube-prometheus-stack's repeat_interval) or every 2 minutes (the README's route): nothing."""
    proc = processor(store)
    at = T0
    while at < T0 + timedelta(hours=hours):
        await deliver(store, proc, at, [alert("Watchdog")])
        await deliver(store, proc, at, [alert("InfoInhibitor", namespace="shop")])
        for check in (at, at + repeat / 2):
            await proc.expire(check)
            await proc.watch(check)
            await proc.tick(check)
        at += repeat
    assert not await store.incidents(IncidentQuery())
    listed = (await store.alerts(AlertQuery())).alerts
    assert sorted((a.labels["alertname"], a.state.status) for a in listed) == [
        ("InfoInhibitor", "firing"),
        ("Watchdog", "firing"),  # stored and never expired between repeats
    ]


async def test_the_pipeline_going_down_is_one_incident_of_the_daemons_own(store: SQLiteStore) -> None:
    proc = processor(store)
    for minute in range(0, 60, 2):
        await deliver(store, proc, T0 + timedelta(minutes=minute), [alert("Watchdog")])
        await proc.watch(T0 + timedelta(minutes=minute))
    for minute in range(60, 180, 1):  # the engine's upkeep cycle, every minute, for two hours of silence
        await proc.watch(T0 + timedelta(minutes=minute))
    [incident] = (await incidents(store)).values()
    assert incident.title == "the alerting pipeline is down: no Watchdog since 2026-11-22T10:28:00Z"
    assert (incident.severity, reasons(incident)) == (Severity.SEV2, ("label severity='SEV2' -> SEV2",))
