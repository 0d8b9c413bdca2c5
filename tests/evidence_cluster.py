"""A realistic cluster for evidence tests and the evidence benchmark, in kmock's KubernetesEmulator.

A Deployment ``shop/web`` with two ReplicaSet revisions (images 1.4.2 and
1.4.3, the second rolled out 4 minutes before the first alert), a
crash-looping Pod of the second (restartCount 5, last terminated Error exit
code 1), events of the pod, its ReplicaSet and its Deployment, a NotReady
Node, a PersistentVolumeClaim with its StorageClass, an HPA at its maximum.
The emulator stores objects but serves neither pod logs nor event field
selectors: logs are kmock reactions on the ``log`` subresource (the current
and the previous container's), answering as the API server does.
The alerts come from ``tests/corpus``: the labels kube-prometheus-stack's
rules yield (the kube-state-metrics target's ``job``/``instance``/``service``/
``endpoint``, and for node alerts the exporter's own ``namespace``/``pod``/
``container``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client as k8s

from receiver.kube import Kube, Retry, without_retries
from tests.corpus import CorpusAlert, alert
from tests.world import DEPLOYMENTS, EVENTS, HPAS, NODES, PODS, PVCS, REPLICASETS, STORAGECLASSES, event, stamp

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
FIRST_ALERT = NOW - timedelta(minutes=5)
"""When the crash-loop alert started (its startsAt)."""
ROLLED_OUT = FIRST_ALERT - timedelta(minutes=4)
POD = "web-7d4b9c6f5-x2x9z"
RS_OLD, RS_NEW = "web-5f6d7c8b9", "web-7d4b9c6f5"
NODE = "node-2"
SECRET = "hunter2-very-secret"
CURRENT_LOG = (
    "2026-11-22T02:59:58Z starting web 1.4.3\n"
    f"2026-11-22T02:59:59Z connecting to postgres://web:{SECRET}@db:5432/shop\n"
    f"2026-11-22T02:59:59Z env DB_PASSWORD={SECRET}\n"
    "2026-11-22T02:59:59Z Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345\n"
    "2026-11-22T03:00:00Z panic: missing config key PAYMENTS_URL\n"
)
PREVIOUS_LOG = "2026-11-22T02:58:00Z starting web 1.4.3\n2026-11-22T02:58:01Z panic: missing config key PAYMENTS_URL\n"
FAST = Retry(attempts=2, first_wait=0.01, longest_wait=0.02, timeout=(2.0, 5.0))

CLAIMS, CLASSES = PVCS, STORAGECLASSES

CORPUS_ALERTS: dict[str, CorpusAlert] = {
    "KubePodCrashLooping": alert("KubePodCrashLooping", namespace="shop", pod=POD, container="web"),
    "KubeNodeNotReady": alert("KubeNodeNotReady", node=NODE),
    "KubePersistentVolumeFillingUp": alert(
        "KubePersistentVolumeFillingUp", variant="critical", namespace="shop", persistentvolumeclaim="data-db-0"
    ),
    "KubeHpaMaxedOut": alert("KubeHpaMaxedOut", namespace="shop", horizontalpodautoscaler="web"),
    "KubeDeploymentRolloutStuck": alert("KubeDeploymentRolloutStuck", namespace="shop", deployment="web"),
}
"""The alerts of this cluster's trouble, from the corpus of kube-prometheus-stack's real alerts."""
ALERTS: dict[str, dict[str, str]] = {name: dict(a.labels) for name, a in CORPUS_ALERTS.items()}
KSM_POD = ALERTS["KubeNodeNotReady"]["pod"]
"""kube-state-metrics' own pod, on its alerts about cluster-scoped objects (honorLabels keeps a series' own)."""


def kube(emulator: Any) -> Kube:
    api = k8s.ApiClient(without_retries(k8s.Configuration(host=str(emulator.url).rstrip("/"))))
    return Kube(api, retry=FAST, clock=lambda: NOW)


def put(
    emulator: Any, resource: tuple[str, str, str], namespace: str | None, name: str, obj: Mapping[str, Any]
) -> None:
    emulator.objects[emulator.resource(*resource), namespace, name] = dict(obj)


def _owner(kind: str, name: str, api: str = "apps/v1") -> list[dict[str, Any]]:
    return [{"apiVersion": api, "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True}]


def replicaset(
    name: str, revision: int, image: str, created: datetime, replicas: int, owner: str = "web"
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "creationTimestamp": stamp(created),
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": _owner("Deployment", owner),
        },
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
        "status": {"replicas": replicas},
    }


def populate(emulator: Any, *, logs: bool = True) -> None:
    """The whole cluster; ``logs``: serve the pod's logs (else the test serves them its own way)."""
    put(
        emulator,
        DEPLOYMENTS,
        "shop",
        "web",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web", "generation": 2},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "shop/web:1.4.3"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 1, "availableReplicas": 2},
        },
    )
    put(emulator, REPLICASETS, "shop", RS_OLD, replicaset(RS_OLD, 1, "shop/web:1.4.2", NOW - timedelta(days=3), 2))
    put(emulator, REPLICASETS, "shop", RS_NEW, replicaset(RS_NEW, 2, "shop/web:1.4.3", ROLLED_OUT, 1))
    other = replicaset("other-5c5c5c5c5", 7, "shop/other:2.0", NOW, 1, owner="other")
    put(emulator, REPLICASETS, "shop", "other-5c5c5c5c5", other)
    put(emulator, PODS, "shop", POD, crashlooping_pod())
    for e in (
        event("Pod", POD, "BackOff", "Back-off restarting failed container web in pod " + POD, NOW),
        event("Pod", POD, "Pulled", 'Container image "shop/web:1.4.3" already present', NOW, "Normal"),
        event("ReplicaSet", RS_NEW, "SuccessfulCreate", f"Created pod: {POD}", ROLLED_OUT, "Normal"),
        event("Deployment", "web", "ScalingReplicaSet", f"Scaled up replica set {RS_NEW} to 1", ROLLED_OUT, "Normal"),
        event("Pod", POD, "Failed", "old news", NOW - timedelta(hours=5)),
        event("Pod", "some-other-pod", "BackOff", "not ours", NOW),
    ):
        put(emulator, EVENTS, "shop", e["metadata"]["name"], e)
    put(emulator, NODES, None, NODE, not_ready_node())
    put(emulator, CLASSES, None, "standard", {"metadata": {"name": "standard"}, "allowVolumeExpansion": True})
    put(emulator, CLAIMS, "shop", "data-db-0", claim())
    put(emulator, HPAS, "shop", "web", hpa())
    if logs:
        serve_logs(emulator, lambda previous: PREVIOUS_LOG if previous else CURRENT_LOG)


def serve_logs(emulator: Any, text: Callable[[bool], str]) -> None:
    """Answer GET .../pods/NAME/log as the API server does: text, the previous container's with ?previous=true."""

    def answer(request: Any) -> bytes:
        return text(request.params.get("previous") == "true").encode()

    emulator[emulator.subresource("log")] << answer


def crashlooping_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": POD,
            "namespace": "shop",
            "labels": {"app": "web"},
            "ownerReferences": _owner("ReplicaSet", RS_NEW),
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "web", "image": "shop/web:1.4.3"}, {"name": "proxy", "image": "envoy:1.30"}],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "web",
                    "image": "shop/web:1.4.3",
                    "ready": False,
                    "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
                    "lastState": {
                        "terminated": {
                            "reason": "Error",
                            "exitCode": 1,
                            "finishedAt": stamp(NOW - timedelta(seconds=30)),
                            "message": f"panic; DB_PASSWORD={SECRET}",
                        }
                    },
                },
                {"name": "proxy", "image": "envoy:1.30", "ready": True, "restartCount": 0, "state": {"running": {}}},
            ],
        },
    }


def not_ready_node() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE},
        "spec": {},
        "status": {
            "nodeInfo": {"kubeletVersion": "v1.30.4"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                    "lastTransitionTime": stamp(NOW - timedelta(minutes=7)),
                },
            ],
        },
    }


def claim() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-db-0", "namespace": "shop"},
        "spec": {
            "storageClassName": "standard",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}},
            "volumeName": "pvc-3f1c",
        },
        "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}},
    }


def hpa() -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "minReplicas": 2,
            "maxReplicas": 6,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        },
        "status": {"currentReplicas": 6, "desiredReplicas": 6},
    }
