"""Least privilege: the permissions table, checked against every request each action really makes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from receiver import cli
from receiver.kube import Kube
from receiver.playbooks.actions import KUBERNETES, wait_for_ready
from receiver.playbooks.actions.annotate import annotate
from receiver.playbooks.actions.base import Context, Outcome
from receiver.playbooks.actions.cordon import cordon
from receiver.playbooks.actions.delete_pod import delete_pod
from receiver.playbooks.actions.expand_pvc import expand_pvc
from receiver.playbooks.actions.raise_hpa_max import raise_hpa_max
from receiver.playbooks.actions.rollout_restart import rollout_restart
from receiver.playbooks.actions.rollout_undo import rollout_undo
from receiver.playbooks.actions.scale import scale
from receiver.playbooks.actions.scale_hpa import scale_hpa
from receiver.playbooks.actions.set_env import set_env
from receiver.playbooks.model import load_dirs
from receiver.playbooks.permissions import Permission, needs, of_playbooks, rules
from tests.test_kube import (
    HPAS,
    PVCS,
    STORAGECLASSES,
    claim,
    deployment,
    hpa,
    kube,
    pod,
    put,
    rolled_out,
    storage_class,
)

ROOT = Path(__file__).resolve().parent.parent
VERBS = {"GET": "get", "PATCH": "patch", "DELETE": "delete", "PUT": "update", "POST": "create"}
STATEFULSETS = ("apps", "v1", "statefulsets")
DAEMONSETS = ("apps", "v1", "daemonsets")
SERVICES = ("", "v1", "services")
NODES = ("", "v1", "nodes")


def workload(kind: str) -> dict[str, Any]:
    obj = deployment()
    obj["kind"] = kind
    return obj


def setup(emulator: Any) -> None:
    put(emulator, ("", "v1", "pods"), "shop", "cart-1", pod("cart-1"))
    put(emulator, STATEFULSETS, "shop", "cart", workload("StatefulSet"))
    put(emulator, DAEMONSETS, "shop", "cart", workload("DaemonSet"))
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cart", "namespace": "shop"}, "spec": {}}
    put(emulator, SERVICES, "shop", "cart", service)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {}}
    put(emulator, NODES, None, "node-1", node)
    rolled_out(emulator, "2026-11-22T02:50:00Z")  # a Deployment with two revisions: undo has one to go back to
    put(emulator, HPAS, "shop", "cart", hpa())
    put(emulator, PVCS, "shop", "data-db-0", claim())
    put(emulator, STORAGECLASSES, None, "standard", storage_class())


Action = Callable[[Kube], Awaitable[Any]]


async def watch(cluster: Kube, kind: str) -> None:
    """``wait_for_ready`` on the workload ``cart`` of ``kind``: one read of it and its pods (``within: 0s``)."""

    async def firing() -> bool:
        return True

    inputs = {"kind": kind, "namespace": "shop", "name": "cart", "stable_seconds": 60.0, "within_seconds": 0.0}
    done = await wait_for_ready.execute(Context(cluster, firing, poll_seconds=10.0), inputs)
    assert done.outcome is Outcome.SUCCEEDED and "not healthy" in done.reason, done  # it read, and went on


ACTIONS: list[tuple[str, str | None, Action]] = [
    ("scale", "Deployment", lambda k: scale(k, "Deployment", "shop", "cart", replicas=5, by=None, low=1, high=9)),
    ("scale", "StatefulSet", lambda k: scale(k, "StatefulSet", "shop", "cart", replicas=5, by=None, low=1, high=9)),
    ("rollout_restart", "Deployment", lambda k: rollout_restart(k, "Deployment", "shop", "cart")),
    ("rollout_restart", "StatefulSet", lambda k: rollout_restart(k, "StatefulSet", "shop", "cart")),
    ("rollout_restart", "DaemonSet", lambda k: rollout_restart(k, "DaemonSet", "shop", "cart")),
    ("rollout_undo", None, lambda k: rollout_undo(k, "shop", "cart")),
    ("delete_pod", None, lambda k: delete_pod(k, "shop", "cart-1")),
    ("set_env", "DaemonSet", lambda k: set_env(k, "DaemonSet", "shop", "cart", None, {"POOL": "50"})),
    ("cordon", None, lambda k: cordon(k, "node-1")),
    ("uncordon", None, lambda k: cordon(k, "node-1", unschedulable=False)),
    ("annotate", "Service", lambda k: annotate(k, "Service", "shop", "cart", {"a": "b"})),
    ("label", "Pod", lambda k: annotate(k, "Pod", "shop", "cart-1", {"a": "b"}, labels=True)),
    (
        "scale_hpa",
        None,
        lambda k: scale_hpa(k, "shop", "cart", min_replicas=3, max_replicas=8, lower=False),
    ),
    ("raise_hpa_max", None, lambda k: raise_hpa_max(k, "shop", "cart", cap=12, by=None, percent=50)),
    ("expand_pvc", None, lambda k: expand_pvc(k, "shop", "data-db-0", by="50%", cap="100Gi")),
    ("wait_for_ready", "Deployment", lambda k: watch(k, "Deployment")),
    ("wait_for_ready", "StatefulSet", lambda k: watch(k, "StatefulSet")),
    ("wait_for_ready", "DaemonSet", lambda k: watch(k, "DaemonSet")),
]


def test_every_action_on_the_cluster_is_checked_against_its_requests() -> None:
    """A new action joins the table above, or this fails: its grants are proven by the requests it makes."""
    assert {action for action, _, _ in ACTIONS} == KUBERNETES


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
@pytest.mark.parametrize(("action", "kind", "act"), ACTIONS, ids=[f"{a}-{k}" for a, k, _ in ACTIONS])
async def test_each_action_needs_exactly_what_its_requests_use(
    kmock: Any, action: str, kind: str | None, act: Action
) -> None:
    setup(kmock)
    if action == "uncordon":
        await cordon(kube(kmock), "node-1")  # something to undo (its requests are not this action's)
    before = len(list(kmock))
    await act(kube(kmock))
    used = {_permission(r) for r in list(kmock)[before:]}
    assert used == needs(action, kind)  # every request is granted, and nothing is granted that is not used


def _permission(request: Any) -> Permission:
    path = [p for p in request.url.path.split("/") if p]
    group = "" if path[0] == "api" else path[1]
    rest = path[2:] if path[0] == "api" else path[3:]
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    resource = rest[0]
    verb = VERBS[request.method]
    if verb == "get" and len(rest) == 1:
        verb = "list"
    return Permission(group, resource, verb)


@pytest.mark.parametrize(
    ("action", "kind", "expected"),
    [
        ("wait", None, set()),
        ("notify", None, set()),
        ("delete_pod", None, {("", "pods", "get"), ("", "pods", "delete")}),
        ("cordon", None, {("", "nodes", "get"), ("", "nodes", "patch")}),
        ("scale", None, {("apps", "deployments", "get"), ("apps", "deployments", "patch")}),
        ("annotate", "Service", {("", "services", "get"), ("", "services", "patch")}),
        (
            "rollout_undo",
            None,
            {("apps", "deployments", "get"), ("apps", "deployments", "patch"), ("apps", "replicasets", "list")},
        ),
    ],
)
def test_needs(action: str, kind: str | None, expected: set[tuple[str, str, str]]) -> None:
    assert needs(action, kind) == {Permission(*p) for p in expected}


def test_an_unknown_action_is_an_error_not_an_empty_grant() -> None:
    with pytest.raises(ValueError, match="unknown action 'exec'"):
        needs("exec")


NODES_RULE = {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}  # cordon
STORAGECLASSES_RULE = {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get"]}
SHIPPED_NAMESPACED = [
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "patch"]},  # expand_pvc
    # delete_pod; get: resolving a pod's owner; list: wait_for_ready's pods
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get", "list"]},
    # wait_for_ready accepts a pod's Deployment, StatefulSet or DaemonSet: it reads whichever owns the pod
    {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},  # rollout_undo
    # get: resolving a pod's owner; list: rollout_undo's revisions, wait_for_ready's Deployment's pods
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},  # resolving: a Job's CronJob
]
"""What the six shipped playbooks need in the namespaces they act in."""


def test_the_shipped_playbooks_need_no_wildcard_and_no_more_than_their_steps() -> None:
    shipped = load_dirs([ROOT / "playbooks"]).playbooks
    assert rules(of_playbooks(shipped)) == sorted(
        [NODES_RULE, STORAGECLASSES_RULE, *SHIPPED_NAMESPACED], key=lambda r: (r["apiGroups"], r["resources"])
    )


def test_cli_rbac_prints_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["playbooks", "rbac", str(ROOT / "playbooks")]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {"namespaced": SHIPPED_NAMESPACED, "cluster": [NODES_RULE, STORAGECLASSES_RULE]}
    assert cli.main(["playbooks", "rbac", str(ROOT / "examples" / "playbooks")]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {
        "namespaced": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get"]},  # crashloop
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
            {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},  # high-error-rate's rollback
        ],
        "cluster": [],
    }
