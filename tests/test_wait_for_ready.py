"""``wait_for_ready``: which pods it waits for, what it asks the API server, and how its watch ends."""

from __future__ import annotations

import copy
from typing import Any

import kmock
import pytest

from receiver.playbooks.actions.base import Context
from receiver.playbooks.actions.wait_for_ready import execute, health, members
from receiver.timer import VirtualTimer
from tests import world
from tests.test_kube import NOW, kube, put

pytestmark = pytest.mark.kmock(cls=kmock.KubernetesEmulator)
WEB = {"kind": "Deployment", "namespace": "shop", "name": "web", "stable_seconds": 60.0, "within_seconds": 300.0}


def web(objects: dict[world.Key, world.Object]) -> tuple[world.Object, list[world.Object], list[world.Object]]:
    deployment = objects[world.DEPLOYMENTS, "shop", "web"]
    pods = [o for (r, _, n), o in objects.items() if r == world.PODS and n.startswith("web-")]
    replica_sets = [o for (r, _, n), o in objects.items() if r == world.REPLICASETS]
    return deployment, pods, replica_sets


def ready(pod: world.Object, name: str) -> world.Object:
    out = copy.deepcopy(pod)
    out["metadata"] |= {"name": name, "uid": f"uid-{name}"}
    out["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    out["status"]["containerStatuses"][0] |= {"ready": True, "restartCount": 0, "state": {"running": {}}}
    return out


def test_members_are_the_workloads_pods_that_run_or_will() -> None:
    deployment, pods, replica_sets = web(world.objects(NOW))
    evicted = copy.deepcopy(pods[0]) | {"status": {"phase": "Failed", "reason": "Evicted"}}
    evicted["metadata"] = pods[0]["metadata"] | {"name": "web-7d4b9c6f5-evict", "uid": "uid-evicted"}
    completed = copy.deepcopy(evicted) | {"status": {"phase": "Succeeded"}}
    leaving = copy.deepcopy(pods[1])
    leaving["metadata"]["deletionTimestamp"] = world.stamp(NOW)
    others = [o for (r, _, n), o in world.objects(NOW).items() if r == world.PODS and not n.startswith("web-")]
    found = members(deployment, [*pods, evicted, completed, leaving, *others], replica_sets)
    assert sorted(p["metadata"]["name"] for p in found) == sorted(p["metadata"]["name"] for p in pods)


def test_an_evicted_pod_left_behind_does_not_make_a_healthy_workload_unhealthy() -> None:
    deployment, pods, replica_sets = web(world.objects(NOW))
    healthy = [ready(p, p["metadata"]["name"]) for p in pods]
    evicted = copy.deepcopy(pods[0]) | {"status": {"phase": "Failed", "reason": "Evicted"}}
    evicted["metadata"] = pods[0]["metadata"] | {"name": "web-7d4b9c6f5-evict", "uid": "uid-evicted"}
    seen = health(deployment, members(deployment, [*healthy, evicted], replica_sets), {})
    assert (seen.healthy, seen.summary) == (True, "3/3 pods ready")


async def test_it_lists_only_the_pods_and_replica_sets_the_workloads_selector_matches(kmock: Any) -> None:
    world.populate(kmock, NOW)
    timer = VirtualTimer()

    async def firing() -> bool:
        return True

    done = await execute(Context(kube(kmock), firing, 5.0, timer), WEB)
    assert "is not healthy after 300s: 0/3 pods ready" in done.reason
    lists = [r for r in kmock if r.method == "GET" and r.resource is not None and r.name is None]
    assert {str(r.resource.plural) for r in lists} == {"pods", "replicasets"}
    assert all(r.params.get("labelSelector") == "app.kubernetes.io/name=web" for r in lists)
    assert timer.monotonic() == 300.0  # it ends by itself at ``within``, before its step's limit


async def test_a_workload_that_becomes_healthy_ends_the_watch_after_stable(kmock: Any) -> None:
    objects = world.populate(kmock, NOW)
    _, pods, _ = web(objects)
    for pod in pods:
        put(kmock, world.PODS, "shop", pod["metadata"]["name"], ready(pod, pod["metadata"]["name"]))
    timer = VirtualTimer()

    async def firing() -> bool:
        return True

    done = await execute(Context(kube(kmock), firing, 5.0, timer), WEB)
    assert done.outcome.value == "resolved"
    assert done.reason == "Deployment shop/web is healthy: 3/3 pods ready, for 60s"
    assert timer.monotonic() == 60.0
