"""The Kubernetes adapter against kmock's KubernetesEmulator, over real HTTP, with the official client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from receiver.kube import ActionFailed, Kube, Retry, scaled

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


def put(emulator: Any, resource: tuple[str, str, str], namespace: str | None, name: str, obj: dict[str, Any]) -> None:
    emulator.objects[emulator.resource(*resource), namespace, name] = obj


def stored(emulator: Any, resource: tuple[str, str, str], namespace: str | None, name: str) -> Any:
    return emulator.objects[emulator.resource(*resource), namespace, name]


def kube(emulator: Any, *, dry_run: bool = False) -> Kube:
    api = k8s.ApiClient(k8s.Configuration(host=str(emulator.url).rstrip("/")))
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
    effect = await k.scale("Deployment", "shop", "cart", replicas=None, by=2, low=1, high=10)
    assert (effect.before, effect.after, effect.changed) == ({"replicas": 2}, {"replicas": 4}, True)
    assert stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["replicas"] == 4
    again = await k.scale("Deployment", "shop", "cart", replicas=4, by=None, low=1, high=10)
    assert not again.changed and again.note == "already so: nothing to change"


async def test_a_relative_scale_is_not_applied_twice_when_a_write_is_retried(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment(replicas=2))
    kmock["patch"][:1] << 500  # the emulator applies the patch, then answers 500: the retry must not add 2 again
    effect = await kube(kmock).scale("Deployment", "shop", "cart", replicas=None, by=2, low=1, high=10)
    assert effect.after == {"replicas": 4}
    assert stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["replicas"] == 4
    assert len(list(kmock["patch"])) == 2


async def test_a_conflict_reads_again_and_decides_again(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment(replicas=2))
    kmock["patch"][:1] << 409
    effect = await kube(kmock).scale("Deployment", "shop", "cart", replicas=3, by=None, low=1, high=10)
    assert effect.after == {"replicas": 3}
    assert len(list(kmock["get"])) == 2  # read, conflict, read again


async def test_forbidden_and_missing_fail_with_a_reason(kmock: Any) -> None:
    with pytest.raises(ActionFailed, match="not found") as missing:
        await kube(kmock).scale("Deployment", "shop", "ghost", replicas=3, by=None, low=1, high=10)
    assert missing.value.status == 404
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    kmock["patch"] << 403
    with pytest.raises(ActionFailed, match=r"forbidden \(403\).*RBAC"):
        await kube(kmock).scale("Deployment", "shop", "cart", replicas=3, by=None, low=1, high=10)
    assert len(list(kmock["patch"])) == 1  # 403 is not retried


async def test_server_errors_are_retried_then_given_up(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    kmock["get"] << 503
    with pytest.raises(ActionFailed, match="503"):
        await kube(kmock).scale("Deployment", "shop", "cart", replicas=3, by=None, low=1, high=10)
    assert len(list(kmock["get"])) == FAST.attempts


async def test_rollout_restart_stamps_the_pod_template(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    effect = await kube(kmock).rollout_restart("Deployment", "shop", "cart")
    assert effect.after == {"restartedAt": NOW.isoformat()}
    template = stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["template"]
    assert template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == NOW.isoformat()


async def test_delete_pod(kmock: Any) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "cart-1", "namespace": "shop"},
        "spec": {"containers": []},
    }
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod)
    effect = await kube(kmock).delete_pod("shop", "cart-1")
    assert effect.after == {"deleted": True}
    assert [r.method for r in kmock["delete"]] == ["DELETE"]
    with pytest.raises(ActionFailed, match="not found"):
        await kube(kmock).delete_pod("shop", "cart-1")  # gone: nothing to delete twice


async def test_cordon_and_uncordon_are_idempotent(kmock: Any) -> None:
    put(
        kmock,
        ("", "v1", "nodes"),
        None,
        "node-1",
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {}},
    )
    k = kube(kmock)
    assert (await k.cordon("node-1")).changed
    assert stored(kmock, ("", "v1", "nodes"), None, "node-1")["spec"]["unschedulable"] is True
    assert not (await k.cordon("node-1")).changed
    assert (await k.cordon("node-1", unschedulable=False)).after == {"unschedulable": False}


async def test_dry_run_reads_and_writes_nothing(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment(replicas=2))
    effect = await kube(kmock, dry_run=True).scale("Deployment", "shop", "cart", replicas=6, by=None, low=1, high=10)
    assert (effect.dry_run, effect.before, effect.after) == (True, {"replicas": 2}, {"replicas": 6})
    assert effect.note == "dry_run is set"
    assert stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["replicas"] == 2
    assert list(kmock["patch"]) == []


async def test_without_credentials_every_action_is_a_dry_run_and_says_why() -> None:
    effect = await Kube(None, dry_run=True).delete_pod("shop", "cart-1")
    assert effect.dry_run and "no Kubernetes credentials" in effect.note
