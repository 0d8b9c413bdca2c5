"""The actions through the Kubernetes adapter against kmock's KubernetesEmulator, over real HTTP, official client."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from receiver.kube import ActionFailed, Kube, Retry, TooOld, without_retries
from receiver.playbooks.actions.annotate import annotate
from receiver.playbooks.actions.cordon import cordon
from receiver.playbooks.actions.delete_pod import delete_pod
from receiver.playbooks.actions.rollout_restart import rollout_restart
from receiver.playbooks.actions.rollout_undo import rollout_undo
from receiver.playbooks.actions.scale import scale, scaled
from receiver.playbooks.actions.set_env import set_env
from tests import world

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
FAST = Retry(attempts=3, first_wait=0.01, longest_wait=0.02, timeout=(2.0, 5.0))
pytestmark = pytest.mark.kmock(cls=kmock.KubernetesEmulator)
DEPLOYMENTS = ("apps", "v1", "deployments")


def deployment(name: str = "cart", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "x"}]},
            },
        },
    }


def pod(name: str = "cart-1") -> dict[str, Any]:
    """A pod of the ReplicaSet ``cart-1`` (its controller: deleting it is safe, another takes its place)."""
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "cart-1", "uid": "u-rs", "controller": True}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "ownerReferences": [owner]},
        "spec": {"containers": []},
    }


def put(emulator: Any, resource: tuple[str, str, str], namespace: str | None, name: str, obj: dict[str, Any]) -> None:
    emulator.objects[emulator.resource(*resource), namespace, name] = obj


def stored(emulator: Any, resource: tuple[str, str, str], namespace: str | None, name: str) -> Any:
    return emulator.objects[emulator.resource(*resource), namespace, name]


def kube(emulator: Any, *, dry_run: bool = False) -> Kube:
    api = k8s.ApiClient(without_retries(k8s.Configuration(host=str(emulator.url).rstrip("/"))))
    return Kube(api, dry_run=dry_run, retry=FAST, clock=lambda: NOW)


@pytest.mark.parametrize(
    ("current", "replicas", "by", "expected"),
    [(2, 5, None, 5), (2, None, 2, 4), (9, None, 2, 10), (2, None, -5, 1), (2, 50, None, 10), (0, 0, None, 1)],
)
def test_scaled_clamps(current: int, replicas: int | None, by: int | None, expected: int) -> None:
    assert scaled(current, replicas, by, 1, 10) == expected


async def test_scale_reads_then_writes_and_a_repeat_changes_nothing(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment(replicas=2))
    k = kube(kmock)
    effect = await scale(k, "Deployment", "shop", "cart", replicas=None, by=2, low=1, high=10)
    assert (effect.before, effect.after, effect.changed) == ({"replicas": 2}, {"replicas": 4}, True)
    assert stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["replicas"] == 4
    again = await scale(k, "Deployment", "shop", "cart", replicas=4, by=None, low=1, high=10)
    assert not again.changed and again.note == "already so: nothing to change"


async def test_a_relative_scale_is_not_applied_twice_when_a_write_is_retried(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment(replicas=2))
    kmock["patch"][:1] << 500  # the emulator applies the patch, then answers 500: the retry must not add 2 again
    effect = await scale(kube(kmock), "Deployment", "shop", "cart", replicas=None, by=2, low=1, high=10)
    assert effect.after == {"replicas": 4}
    assert stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["replicas"] == 4
    assert len(list(kmock["patch"])) == 2


async def test_a_conflict_reads_again_and_decides_again(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment(replicas=2))
    kmock["patch"][:1] << 409
    effect = await scale(kube(kmock), "Deployment", "shop", "cart", replicas=3, by=None, low=1, high=10)
    assert effect.after == {"replicas": 3}
    assert len(list(kmock["get"])) == 2  # read, conflict, read again


async def test_forbidden_and_missing_fail_with_a_reason(kmock: Any) -> None:
    with pytest.raises(ActionFailed, match="not found") as missing:
        await scale(kube(kmock), "Deployment", "shop", "ghost", replicas=3, by=None, low=1, high=10)
    assert missing.value.status == 404
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    kmock["patch"] << 403
    with pytest.raises(ActionFailed, match=r"forbidden \(403\).*RBAC"):
        await scale(kube(kmock), "Deployment", "shop", "cart", replicas=3, by=None, low=1, high=10)
    assert len(list(kmock["patch"])) == 1  # 403 is not retried


async def test_server_errors_are_retried_then_given_up(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    kmock["get"] << 503
    with pytest.raises(ActionFailed, match="503"):
        await scale(kube(kmock), "Deployment", "shop", "cart", replicas=3, by=None, low=1, high=10)
    assert len(list(kmock["get"])) == FAST.attempts


async def test_rollout_restart_stamps_the_pod_template(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    effect = await rollout_restart(kube(kmock), "Deployment", "shop", "cart")
    assert effect.after == {"restartedAt": NOW.isoformat()}
    template = stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["template"]
    assert template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == NOW.isoformat()


async def test_delete_pod_leaves_a_pod_no_controller_owns_unless_told(kmock: Any) -> None:
    bare = pod("debug-shell")
    del bare["metadata"]["ownerReferences"]
    put(kmock, ("", "v1", "pods"), "shop", "debug-shell", bare)
    with pytest.raises(ActionFailed, match="no controller owns it, so nothing would make it again: not deleted"):
        await delete_pod(kube(kmock), "shop", "debug-shell")
    assert list(kmock["delete"]) == []
    assert (await delete_pod(kube(kmock), "shop", "debug-shell", bare=True)).after == {"deleted": True}


async def test_delete_pod(kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod())
    effect = await delete_pod(kube(kmock), "shop", "cart-1")
    assert effect.after == {"deleted": True}
    assert [r.method for r in kmock["delete"]] == ["DELETE"]
    with pytest.raises(ActionFailed, match="not found"):
        await delete_pod(kube(kmock), "shop", "cart-1")  # gone: nothing to delete twice


async def test_cordon_and_uncordon_are_idempotent(kmock: Any) -> None:
    put(
        kmock,
        ("", "v1", "nodes"),
        None,
        "node-1",
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {}},
    )
    k = kube(kmock)
    assert (await cordon(k, "node-1")).changed
    assert stored(kmock, ("", "v1", "nodes"), None, "node-1")["spec"]["unschedulable"] is True
    assert not (await cordon(k, "node-1")).changed
    assert (await cordon(k, "node-1", unschedulable=False)).after == {"unschedulable": False}


async def test_dry_run_reads_and_writes_nothing(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment(replicas=2))
    effect = await scale(kube(kmock, dry_run=True), "Deployment", "shop", "cart", replicas=6, by=None, low=1, high=10)
    assert (effect.dry_run, effect.before, effect.after) == (True, {"replicas": 2}, {"replicas": 6})
    assert effect.note == "dry_run is set"
    assert stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["replicas"] == 2
    assert list(kmock["patch"]) == []


async def test_without_credentials_every_action_is_a_dry_run_and_says_why() -> None:
    effect = await delete_pod(Kube(None, dry_run=True), "shop", "cart-1")
    assert effect.dry_run and "no Kubernetes credentials" in effect.note


async def test_set_env_replaces_or_adds_and_a_repeat_changes_nothing(kmock: Any) -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"] = [
        {"name": "app", "image": "x", "env": [{"name": "DB_POOL_SIZE", "value": "10"}, {"name": "KEEP", "value": "1"}]},
        {"name": "sidecar", "image": "y"},
    ]
    put(kmock, DEPLOYMENTS, "shop", "cart", obj)
    k = kube(kmock)
    effect = await set_env(k, "Deployment", "shop", "cart", None, {"DB_POOL_SIZE": "50", "NEW": "on"})
    assert effect.before == {"env": {"DB_POOL_SIZE": "10"}}
    assert effect.after == {"env": {"DB_POOL_SIZE": "50", "NEW": "on"}}
    containers = stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["template"]["spec"]["containers"]
    assert containers[0]["env"] == [
        {"name": "DB_POOL_SIZE", "value": "50"},
        {"name": "KEEP", "value": "1"},
        {"name": "NEW", "value": "on"},
    ]
    assert [c["name"] for c in containers] == ["app", "sidecar"]  # the other container is untouched
    assert not (await set_env(k, "Deployment", "shop", "cart", "app", {"DB_POOL_SIZE": "50"})).changed
    with pytest.raises(ActionFailed, match="no container named 'db'"):
        await set_env(k, "Deployment", "shop", "cart", "db", {"X": "1"})


async def test_annotate_and_label(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod())
    k = kube(kmock)
    effect = await annotate(k, "Deployment", "shop", "cart", {"receiver/remediated": "crashloop"})
    assert effect.after == {"annotations": {"receiver/remediated": "crashloop"}}
    assert not (await annotate(k, "Deployment", "shop", "cart", {"receiver/remediated": "crashloop"})).changed
    await annotate(k, "Pod", "shop", "cart-1", {"quarantine": "true"}, labels=True)
    assert stored(kmock, ("", "v1", "pods"), "shop", "cart-1")["metadata"]["labels"] == {"quarantine": "true"}


def replica_set(revision: int, image: str, created: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"cart-{revision}",
            "namespace": "shop",
            "creationTimestamp": created,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart", "uid": "u1"}],
        },
        "spec": {
            "selector": {"matchLabels": {"app": "cart"}},
            "template": {
                "metadata": {"labels": {"app": "cart", "pod-template-hash": f"h{revision}"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def rolled_out(kmock: Any, last_created: str) -> None:
    obj = deployment()
    obj["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "2"}
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "cart:2"
    put(kmock, DEPLOYMENTS, "shop", "cart", obj)
    put(kmock, ("apps", "v1", "replicasets"), "shop", "cart-1", replica_set(1, "cart:1", "2026-11-21T03:00:00Z"))
    put(kmock, ("apps", "v1", "replicasets"), "shop", "cart-2", replica_set(2, "cart:2", last_created))


async def test_rollout_undo_goes_back_to_the_previous_revision(kmock: Any) -> None:
    rolled_out(kmock, "2026-11-22T02:50:00Z")  # 10 minutes before NOW
    effect = await rollout_undo(kube(kmock), "shop", "cart", max_age=1800)
    assert effect.before == {"revision": 2, "images": ["cart:2"]}
    assert effect.after["images"] == ["cart:1"]
    template = stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["template"]
    assert template["metadata"]["labels"] == {"app": "cart"}  # without the old pod-template-hash


async def test_rollout_undo_leaves_an_old_rollout_alone_and_needs_a_previous_revision(kmock: Any) -> None:
    rolled_out(kmock, "2026-11-21T22:00:00Z")  # 5 hours before NOW
    with pytest.raises(TooOld, match="more than 1800s: not rolled back"):
        await rollout_undo(kube(kmock), "shop", "cart", max_age=1800)
    assert stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["template"]["spec"]["containers"][0]["image"] == "cart:2"
    kmock.objects[kmock.resource("apps", "v1", "replicasets"), "shop", "cart-1"].delete()
    with pytest.raises(ActionFailed, match="revision 2 is the first"):
        await rollout_undo(kube(kmock), "shop", "cart")


async def test_a_dry_run_says_what_it_would_send_for_every_action(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    k = kube(kmock, dry_run=True)
    env = await set_env(k, "Deployment", "shop", "cart", None, {"DB_POOL_SIZE": "50"})
    marked = await annotate(k, "Deployment", "shop", "cart", {"receiver/x": "1"})
    for effect in (env, marked):
        assert effect.dry_run and effect.changed and effect.patch is not None
    assert env.patch is not None and env.patch["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "DB_POOL_SIZE", "value": "50"}
    ]
    assert list(kmock["patch"]) == []


def test_without_credentials_the_adapter_is_a_dry_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    found = Kube.from_environment()
    assert found.api is None and found.dry_run and "no Kubernetes credentials" in found.why_dry


async def test_a_slow_api_server_times_out_is_retried_then_fails_with_a_reason(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())

    async def slow(_: Any) -> dict[str, Any]:
        await asyncio.sleep(1.0)  # longer than the read timeout below
        return deployment()

    kmock["get"] << slow
    impatient = Kube(kube(kmock).api, retry=Retry(attempts=2, first_wait=0.01, longest_wait=0.02, timeout=(1.0, 0.2)))
    with pytest.raises(ActionFailed, match="could not be reached"):
        await scale(impatient, "Deployment", "shop", "cart", replicas=3, by=None, low=1, high=10)
    assert len(list(kmock["get"])) == 2  # the timeout was retried once, then given up
    assert stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["replicas"] == 2  # nothing was written


HPAS = ("autoscaling", "v2", "horizontalpodautoscalers")


def hpa(low: int = 2, high: int = 6) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "cart", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart"},
            "minReplicas": low,
            "maxReplicas": high,
        },
    }


PVCS = ("", "v1", "persistentvolumeclaims")
STORAGECLASSES = ("storage.k8s.io", "v1", "storageclasses")


def claim(
    name: str = "data-db-0",
    requested: str = "10Gi",
    capacity: str | None = None,
    storage_class: str | None = "standard",
    conditions: tuple[str, ...] = (),
    phase: str = "Bound",
) -> dict[str, Any]:
    """A PersistentVolumeClaim as a StatefulSet's volumeClaimTemplate makes it, bound to its volume."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": requested}},
        "volumeMode": "Filesystem",
        "volumeName": f"pvc-{name}",
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    status: dict[str, Any] = {"phase": phase, "accessModes": ["ReadWriteOnce"]}
    if phase == "Bound":
        status["capacity"] = {"storage": capacity or requested}
    if conditions:
        status["conditions"] = [
            {"type": c, "status": "True", "lastTransitionTime": "2026-11-22T02:59:00Z"} for c in conditions
        ]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "labels": {"app": "db"}},
        "spec": spec,
        "status": status,
    }


def storage_class(name: str = "standard", expandable: bool | None = True) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": "ebs.csi.aws.com",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    if expandable is not None:
        obj["allowVolumeExpansion"] = expandable
    return obj


async def test_two_rollbacks_of_one_bad_rollout_do_not_go_back_to_it(kmock: Any) -> None:
    """KubeDeploymentRolloutStuck and KubeContainerWaiting both answer shop/api's bad rollout with a rollback."""
    world.populate(kmock, NOW)
    k = kube(kmock)
    first = await rollout_undo(k, "shop", "api")
    assert (first.before["images"], first.after["images"]) == (
        ["registry.example.com/shop/api:2.0.0"],
        ["registry.example.com/shop/api:1.9.0"],
    )
    again = await rollout_undo(k, "shop", "api", max_age=3 * 3600)  # before the controller has moved on
    assert not again.changed and again.note == "already so: nothing to change"
    # The controller re-uses revision 4's ReplicaSet as revision 6: the current revision is itself a rollback.
    for resource, name in ((world.DEPLOYMENTS, "api"), (world.REPLICASETS, "api-5c8d7f9b4")):
        obj = copy.deepcopy(world.objects(NOW)[resource, "shop", name])
        obj["metadata"]["annotations"][world.REVISION] = "6"
        put(kmock, resource, "shop", name, obj)
    with pytest.raises(TooOld, match=r"revision 6 is itself a rollback .* older than revision 5's"):
        await rollout_undo(k, "shop", "api")
    assert len(list(kmock["patch"])) == 1


async def test_rollout_undo_sets_the_previous_template_whole_as_kubectl_does(kmock: Any) -> None:
    """A strategic merge would keep what the bad revision added (an env var, a sidecar): the template is replaced."""
    objects = world.populate(kmock, NOW)
    bad = copy.deepcopy(objects[world.DEPLOYMENTS, "shop", "api"])
    bad["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "NEW_FLAG", "value": "on"}]
    bad["spec"]["template"]["spec"]["containers"].append({"name": "proxy", "image": "envoy:1.31"})
    put(kmock, world.DEPLOYMENTS, "shop", "api", bad)
    effect = await rollout_undo(kube(kmock), "shop", "api")
    assert effect.changed
    previous = copy.deepcopy(objects[world.REPLICASETS, "shop", "api-5c8d7f9b4"]["spec"]["template"])
    del previous["metadata"]["labels"]["pod-template-hash"]
    assert stored(kmock, world.DEPLOYMENTS, "shop", "api")["spec"]["template"] == previous
    [patch] = list(kmock["patch"])
    assert patch.headers["Content-Type"] == "application/json-patch+json"
    assert patch.data == [{"op": "replace", "path": "/spec/template", "value": previous}]
    assert not (await rollout_undo(kube(kmock), "shop", "api")).changed  # already there: no second write
    assert len(list(kmock["patch"])) == 1
