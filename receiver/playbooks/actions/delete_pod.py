"""``delete_pod``: delete one pod (its controller starts another). Each counts toward the pods-deleted caps.

A pod no controller owns (a bare pod, a debugging shell) would not come back:
it is left alone and the step fails saying so, unless the step says
``bare: true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from receiver.cluster import ActionFailed, Body, Change, Cluster, Effect, Ref
from receiver.playbooks.actions.base import Action, Blast, Grant, Inputs, Render, StepBase, on_cluster
from receiver.playbooks.actions.targets import POD, PodTarget


class DeletePod(StepBase):
    """Delete one pod (its controller makes a new one)."""

    action: Literal["delete_pod"]
    target: PodTarget
    bare: bool = False
    """Also delete a pod that no controller owns (nothing will make it again)."""


def plan(step: DeletePod, render: Render) -> dict[str, Any]:
    """The pod (and ``bare`` when a pod no controller owns may go too)."""
    return step.target.rendered(render) | ({"bare": True} if step.bare else {})


async def delete_pod(cluster: Cluster, namespace: str, name: str, *, bare: bool = False) -> Effect:
    """Delete a pod; a pod already gone is a failure (404), not a success; so is a pod no controller owns, unless
    ``bare``."""
    target = Ref(POD, namespace, name)

    def decide(obj: Body) -> Body:
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        if not bare and not any(r.get("controller") is True for r in refs):
            raise ActionFailed(f"{target}: no controller owns it, so nothing would make it again: not deleted")
        return {"delete": True}

    def write(_: Body) -> None:
        cluster.delete(target)

    def state(obj: Body | None) -> dict[str, Any]:
        if obj is None:
            return {"deleted": True}
        return {"deleted": False, "phase": (obj.get("status") or {}).get("phase")}

    def predict(before: Mapping[str, Any], body: Body) -> dict[str, Any]:
        return dict(before) | {"deleted": True}

    return await cluster.change(
        Change("delete_pod", str(target), lambda: cluster.get(target), decide, write, state, predict)
    )


async def _execute(cluster: Cluster, i: Inputs) -> Effect:
    return await delete_pod(cluster, i["namespace"], i["name"], bare=bool(i.get("bare")))


ACTION = Action(
    "delete_pod",
    DeletePod,
    plan,
    on_cluster(_execute),
    grants={"Pod": (Grant(POD, ("get", "delete")),)},
    default_kind="Pod",
    blast=lambda i: Blast(pods_deleted=1),
    example={"action": "delete_pod", "target": {"namespace": "shop", "name": "cart-1"}},
)
