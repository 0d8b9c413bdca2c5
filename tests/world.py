"""A small cluster as kube-prometheus-stack watches it, for the shipped playbooks' tests and the end-to-end test.

The objects are what an API server holds for a real workload, not the least a
test could get away with: Deployments own ReplicaSets (with their
``deployment.kubernetes.io/revision`` annotations and ``pod-template-hash``
labels) which own Pods (controller ownerReferences with uids), a StatefulSet
owns its pod and claims a volume through a StorageClass that allows
expansion, an HPA scales a Deployment and sits at its maximum, a node has
stopped posting its status. Every time is relative to ``now``, the moment
the alerts about this world fire, so no test depends on today's date.

What is wrong in this world, and the alert kube-prometheus-stack raises for it:

- ``shop/web`` was rolled out 20 minutes before ``now`` (image 1.4.2 to 1.4.3) and its
  new pods crash-loop: ``KubePodCrashLooping`` for ``web-7d4b9c6f5-x2x9z`` (container ``web``).
- ``shop/api``'s rollout 70 minutes before ``now`` brought an image that cannot be pulled:
  ``KubeDeploymentRolloutStuck`` (deployment ``api``) and ``KubeContainerWaiting``
  (reason ``ImagePullBackOff``) for ``api-59b7c6d8f-h2lqp``.
- ``shop/cart``'s rollout 40 minutes before ``now`` asks for more memory than any node has: its new
  pod stays Pending and the rollout is stuck: ``KubeDeploymentRolloutStuck`` (deployment ``cart``).
- ``shop/checkout``'s HPA has run at its maximum of 8: ``KubeHpaMaxedOut``.
- ``shop/data-postgres-0`` (10Gi) is 98% full: ``KubePersistentVolumeFillingUp``.
- node ``worker-2`` stopped posting its status: ``KubeNodeNotReady``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

Object = dict[str, Any]
Key = tuple[tuple[str, str, str], str | None, str]
"""(group, version, plural), namespace, name: where the emulator keeps an object."""

PODS = ("", "v1", "pods")
NODES = ("", "v1", "nodes")
PVCS = ("", "v1", "persistentvolumeclaims")
STORAGECLASSES = ("storage.k8s.io", "v1", "storageclasses")
DEPLOYMENTS = ("apps", "v1", "deployments")
REPLICASETS = ("apps", "v1", "replicasets")
STATEFULSETS = ("apps", "v1", "statefulsets")
DAEMONSETS = ("apps", "v1", "daemonsets")
JOBS = ("batch", "v1", "jobs")
CRONJOBS = ("batch", "v1", "cronjobs")
HPAS = ("autoscaling", "v2", "horizontalpodautoscalers")
EVENTS = ("", "v1", "events")
NAMESPACE = "shop"
REVISION = "deployment.kubernetes.io/revision"


def stamp(moment: datetime) -> str:
    """An API server's timestamp."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(name: str, created: datetime, namespace: str | None = NAMESPACE, **extra: Any) -> Object:
    meta: Object = {"name": name, "uid": f"uid-{name}", "creationTimestamp": stamp(created), **extra}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _owner(kind: str, name: str, api_version: str = "apps/v1") -> Object:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": f"uid-{name}",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _template(app: str, image: str, pod_hash: str | None = None) -> Object:
    labels = {"app.kubernetes.io/name": app} | ({"pod-template-hash": pod_hash} if pod_hash else {})
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": app, "image": image, "ports": [{"containerPort": 8080}]}]},
    }


def deployment(app: str, revision: int, image: str, created: datetime, replicas: int, **status: Any) -> Object:
    """A Deployment at ``revision`` running ``image``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(app, created, annotations={REVISION: str(revision)}, generation=revision),
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "template": _template(app, image),
        },
        "status": {"observedGeneration": revision, "replicas": replicas, **status},
    }


def replica_set(app: str, pod_hash: str, revision: int, image: str, created: datetime, replicas: int) -> Object:
    """The ReplicaSet of one revision of Deployment ``app``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": _meta(
            f"{app}-{pod_hash}",
            created,
            labels={"app.kubernetes.io/name": app, "pod-template-hash": pod_hash},
            annotations={REVISION: str(revision), "deployment.kubernetes.io/desired-replicas": str(replicas)},
            ownerReferences=[_owner("Deployment", app)],
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": app, "pod-template-hash": pod_hash}},
            "template": _template(app, image, pod_hash),
        },
        "status": {"replicas": replicas},
    }


def pod(name: str, owner: Object, image: str, node: str, started: datetime, state: Object, **counts: Any) -> Object:
    """A running pod of ``owner`` (a ReplicaSet or StatefulSet) whose one container is in ``state``."""
    app = owner["metadata"]["labels"]["app.kubernetes.io/name"]
    ready = "running" in state
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(
            name,
            started,
            labels=dict(owner["spec"]["template"]["metadata"]["labels"]),
            ownerReferences=[_owner(owner["kind"], owner["metadata"]["name"])],
        ),
        "spec": {"nodeName": node, "containers": [{"name": app, "image": image}]},
        "status": {
            "phase": "Running" if ready or counts.get("restarts") else "Pending",
            "conditions": [{"type": "Ready", "status": str(ready)}],
            "containerStatuses": [
                {
                    "name": app,
                    "image": image,
                    "ready": ready,
                    "restartCount": counts.get("restarts", 0),
                    "state": state,
                    **({"lastState": counts["last"]} if "last" in counts else {}),
                }
            ],
        },
    }


def crash_looping(now: datetime) -> Object:
    """A container waiting in CrashLoopBackOff after its last run exited with an error."""
    return {
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}},
        "last": {
            "terminated": {
                "reason": "Error",
                "exitCode": 1,
                "startedAt": stamp(now - timedelta(minutes=1)),
                "finishedAt": stamp(now - timedelta(seconds=50)),
            }
        },
        "restarts": 9,
    }


def node(name: str, ready: bool, now: datetime, address: str) -> Object:
    """A node at ``address``; one that is not ready has stopped posting its status 20 minutes ago."""
    heartbeat = stamp(now - timedelta(minutes=20 if not ready else 0))
    condition = (
        {"status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
        if ready
        else {"status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}
    )
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(name, now - timedelta(days=30), namespace=None, labels={"kubernetes.io/hostname": name}),
        "spec": {"podCIDR": "10.244.2.0/24"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "lastHeartbeatTime": heartbeat, **condition}],
            "nodeInfo": {"kubeletVersion": "v1.31.4"},
        },
    }


def event(kind: str, name: str, reason: str, message: str, at: datetime, type_: str = "Warning") -> Object:
    """An event about ``kind`` ``name`` in the shop namespace, last seen ``at``, as the kubelet or a controller
    records it."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": _meta(f"{name}.{reason.lower()}", at - timedelta(minutes=3)),
        "involvedObject": {"kind": kind, "name": name, "namespace": NAMESPACE, "uid": f"uid-{name}"},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 3,
        "firstTimestamp": stamp(at - timedelta(minutes=3)),
        "lastTimestamp": stamp(at),
    }


WEB_LOG = """\
2026-11-22T02:59:40Z INFO starting web 1.4.3
2026-11-22T02:59:41Z INFO connecting to postgres://shop:hunter2@postgres.shop.svc:5432/shop
2026-11-22T02:59:41Z ERROR config: FEATURE_FLAGS_URL is not set
panic: config: FEATURE_FLAGS_URL is not set
"""
"""What web 1.4.3 writes before it exits with 1 (its password in a URL, for the redaction to take out)."""


def serve_logs(emulator: Any) -> None:
    """Answer GET .../pods/NAME/log as the API server does, in text: web's pods crash with ``WEB_LOG`` (their
    previous container too); a container that never started has written nothing."""

    def answer(request: Any) -> bytes:
        return WEB_LOG.encode() if str(request.name or "").startswith("web-") else b""

    emulator[emulator.subresource("log")] << answer


def objects(now: datetime) -> dict[Key, Object]:
    """Every object of the world, by where the emulator keeps it."""
    out: dict[Key, Object] = {}

    def add(resource: tuple[str, str, str], obj: Object) -> Object:
        out[resource, obj["metadata"].get("namespace"), obj["metadata"]["name"]] = obj
        return obj

    days_ago = now - timedelta(days=3)
    add(NODES, node("worker-1", True, now, "10.0.1.11"))
    add(NODES, node("worker-2", False, now, "10.0.1.12"))

    # shop/web: rolled out 20 minutes ago, 1.4.2 -> 1.4.3; the new pods crash-loop.
    web_rollout = now - timedelta(minutes=20)
    add(DEPLOYMENTS, deployment("web", 2, "registry.example.com/shop/web:1.4.3", days_ago, 3, readyReplicas=0))
    add(REPLICASETS, replica_set("web", "6d5f8b7c9", 1, "registry.example.com/shop/web:1.4.2", days_ago, 0))
    current = add(
        REPLICASETS, replica_set("web", "7d4b9c6f5", 2, "registry.example.com/shop/web:1.4.3", web_rollout, 3)
    )
    crash = crash_looping(now)
    for suffix in ("x2x9z", "k8s7d", "q9vzt"):
        add(
            PODS,
            pod(
                f"web-7d4b9c6f5-{suffix}",
                current,
                "registry.example.com/shop/web:1.4.3",
                "worker-1",
                web_rollout,
                crash["state"],
                restarts=crash["restarts"],
                last=crash["last"],
            ),
        )

    web_pod, web_rs = "web-7d4b9c6f5-x2x9z", "web-7d4b9c6f5"
    for e in (
        event("Pod", web_pod, "BackOff", f"Back-off restarting failed container web in pod {web_pod}", now),
        event("ReplicaSet", web_rs, "SuccessfulCreate", f"Created pod: {web_pod}", web_rollout, "Normal"),
        event("Deployment", "web", "ScalingReplicaSet", f"Scaled up replica set {web_rs} to 3", web_rollout, "Normal"),
    ):
        add(EVENTS, e)

    # shop/api: rolled out 70 minutes ago to an image that does not exist; the rollout is stuck.
    api_rollout = now - timedelta(minutes=70)
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "api-59b7c6d8f" has timed out progressing.',
    }
    add(
        DEPLOYMENTS,
        deployment("api", 5, "registry.example.com/shop/api:2.0.0", days_ago, 2, conditions=[stuck], readyReplicas=2),
    )
    add(REPLICASETS, replica_set("api", "5c8d7f9b4", 4, "registry.example.com/shop/api:1.9.0", days_ago, 2))
    new = add(REPLICASETS, replica_set("api", "59b7c6d8f", 5, "registry.example.com/shop/api:2.0.0", api_rollout, 1))
    pull = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "…/api:2.0.0"'}}
    add(PODS, pod("api-59b7c6d8f-h2lqp", new, "registry.example.com/shop/api:2.0.0", "worker-1", api_rollout, pull))
    failed_pull = 'Failed to pull image "registry.example.com/shop/api:2.0.0": manifest unknown'
    add(EVENTS, event("Pod", "api-59b7c6d8f-h2lqp", "Failed", failed_pull, now))

    # shop/cart: rolled out 40 minutes ago to a template no node can schedule; the rollout is stuck.
    cart_rollout = now - timedelta(minutes=40)
    stuck_cart = stuck | {"message": 'ReplicaSet "cart-6f9c8d7b5" has timed out progressing.'}
    add(
        DEPLOYMENTS,
        deployment("cart", 3, "registry.example.com/shop/cart:2.3.0", days_ago, 2, conditions=[stuck_cart]),
    )
    add(REPLICASETS, replica_set("cart", "84c7b9d6f", 2, "registry.example.com/shop/cart:2.2.0", days_ago, 2))
    pending = add(
        REPLICASETS, replica_set("cart", "6f9c8d7b5", 3, "registry.example.com/shop/cart:2.3.0", cart_rollout, 1)
    )
    unschedulable = pod(
        "cart-6f9c8d7b5-t5xkq",
        pending,
        "registry.example.com/shop/cart:2.3.0",
        "",
        cart_rollout,
        {"waiting": {"reason": "ContainerCreating"}},
    )
    unschedulable["spec"].pop("nodeName")
    unschedulable["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/2 nodes are available: 2 Insufficient memory.",
            }
        ],
    }
    add(PODS, unschedulable)
    add(
        EVENTS,
        event(
            "Pod", "cart-6f9c8d7b5-t5xkq", "FailedScheduling", "0/2 nodes are available: 2 Insufficient memory.", now
        ),
    )

    # shop/checkout: an HPA at its maximum.
    add(DEPLOYMENTS, deployment("checkout", 1, "registry.example.com/shop/checkout:3.2.0", days_ago, 8))
    add(
        HPAS,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta("checkout", days_ago),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
                "minReplicas": 2,
                "maxReplicas": 8,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                    }
                ],
            },
            "status": {"currentReplicas": 8, "desiredReplicas": 8},
        },
    )

    # shop/postgres: a StatefulSet whose volume fills up; its class allows expansion.
    add(
        STORAGECLASSES,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": _meta("standard-rwo", days_ago, namespace=None),
            "provisioner": "pd.csi.storage.gke.io",
            "allowVolumeExpansion": True,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
        },
    )
    postgres = add(
        STATEFULSETS,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta("postgres", days_ago, labels={"app.kubernetes.io/name": "postgres"}),
            "spec": {
                "replicas": 1,
                "serviceName": "postgres",
                "selector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
                "template": _template("postgres", "postgres:16.4"),
            },
        },
    )
    add(PODS, pod("postgres-0", postgres, "postgres:16.4", "worker-1", days_ago, {"running": {}}))
    add(
        PVCS,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta("data-postgres-0", days_ago, labels={"app.kubernetes.io/name": "postgres"}),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "standard-rwo",
                "resources": {"requests": {"storage": "10Gi"}},
                "volumeName": "pvc-0b7e4c2a",
            },
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]},
        },
    )
    return out


def populate(emulator: Any, now: datetime) -> dict[Key, Object]:
    """Put the world into kmock's ``KubernetesEmulator`` and serve its pods' logs; the objects, by key."""
    world = objects(now)
    for (resource, namespace, name), obj in world.items():
        emulator.objects[emulator.resource(*resource), namespace, name] = obj
    serve_logs(emulator)
    return world
