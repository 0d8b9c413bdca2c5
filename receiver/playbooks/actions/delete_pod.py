"""``delete_pod``: delete one pod (its controller starts another). Each counts toward the pods-deleted caps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from receiver.cluster import Body, Change, Cluster, Effect, Ref
from receiver.playbooks.actions.base import Action, Blast, Grant, Inputs, Render, StepBase, on_cluster
from receiver.playbooks.actions.targets import POD, PodTarget


class DeletePod(StepBase):
    """Delete one pod (its controller makes a new one)."""

    action: Literal["delete_pod"]
    target: PodTarget


def plan(step: DeletePod, render: Render) -> dict[str, Any]:
    """The pod."""
    return step.target.rendered(render)


async def delete_pod(cluster: Cluster, namespace: str, name: str) -> Effect:
    """Delete a pod; a pod already gone is a failure (404), not a success."""
    target = Ref(POD, namespace, name)

    def decide(obj: Body) -> Body:
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
    return await delete_pod(cluster, i["namespace"], i["name"])


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
