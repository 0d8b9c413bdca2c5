"""``cordon`` and ``uncordon``: mark a node unschedulable, or schedulable again (nodes: a ClusterRole)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from receiver.cluster import Body, Cluster, Effect, Ref
from receiver.playbooks.actions.base import (
    Action,
    Grant,
    Inputs,
    Model,
    Render,
    StepBase,
    Template,
    on_cluster,
    patch_one,
)
from receiver.playbooks.actions.targets import NODE
from receiver.playbooks.templating import dns1123_subdomain


class NodeTarget(Model):
    """A node."""

    name: Template


class Cordon(StepBase):
    """Mark a node unschedulable (``cordon``) or schedulable again (``uncordon``)."""

    action: Literal["cordon", "uncordon"]
    target: NodeTarget


def plan(step: Cordon, render: Render) -> dict[str, Any]:
    """The node."""
    return {"node": dns1123_subdomain(render.text(step.target.name), "node name")}


async def cordon(cluster: Cluster, node: str, *, unschedulable: bool = True) -> Effect:
    """Mark a node unschedulable (or schedulable again)."""
    target = Ref(NODE, None, node)

    def decide(obj: Body) -> Body | None:
        return None if _unschedulable(obj) == unschedulable else {"spec": {"unschedulable": unschedulable}}

    def predict(before: Mapping[str, Any], body: Body) -> dict[str, Any]:
        return dict(before) | {"unschedulable": body["spec"]["unschedulable"]}

    return await patch_one(
        cluster,
        "cordon" if unschedulable else "uncordon",
        target,
        decide,
        lambda obj: {"unschedulable": _unschedulable(obj or {})},
        predict,
    )


def _unschedulable(obj: Body) -> bool:
    return bool((obj.get("spec") or {}).get("unschedulable"))


async def _cordon(cluster: Cluster, i: Inputs) -> Effect:
    return await cordon(cluster, i["node"])


async def _uncordon(cluster: Cluster, i: Inputs) -> Effect:
    return await cordon(cluster, i["node"], unschedulable=False)


_NODES = {"Node": (Grant(NODE, ("get", "patch")),)}
_NODE = {"target": {"name": "{{ alert.labels.node }}"}}
CORDON = Action("cordon", Cordon, plan, on_cluster(_cordon), _NODES, "Node", example={"action": "cordon"} | _NODE)
UNCORDON = Action(
    "uncordon", Cordon, plan, on_cluster(_uncordon), _NODES, "Node", example={"action": "uncordon"} | _NODE
)
