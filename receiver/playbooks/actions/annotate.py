"""``annotate`` and ``label``: set annotations or labels on an object; those already set as asked are left alone."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from receiver.cluster import Body, Cluster, Effect
from receiver.playbooks.actions.base import Action, Inputs, Render, StepBase, Template, on_cluster, patch_one
from receiver.playbooks.actions.owners import Run, owned
from receiver.playbooks.actions.targets import OBJECTS, ObjectTarget, each, ref
from receiver.playbooks.templating import label_value, qualified_name


class Annotate(StepBase):
    """Set annotations (``annotate``) or labels (``label``) on an object."""

    action: Literal["annotate", "label"]
    target: ObjectTarget
    values: Annotated[dict[str, Template], pydantic.Field(min_length=1)]


def plan(step: Annotate, render: Render) -> dict[str, Any]:
    """The target and the values, rendered; keys are qualified names, label values are checked as such."""
    out = step.target.rendered(render)
    check = label_value if step.action == "label" else (lambda v: v)
    out["values"] = {qualified_name(k, "key"): check(render.text(v)) for k, v in step.values.items()}
    return out


async def annotate(
    cluster: Cluster, kind: str, namespace: str, name: str, values: dict[str, str], *, labels: bool = False
) -> Effect:
    """Set annotations (or labels) on an object."""
    target = ref({"kind": kind, "namespace": namespace, "name": name})
    field = "labels" if labels else "annotations"

    def current(obj: Body | None) -> dict[str, str]:
        found: dict[str, str] = ((obj or {}).get("metadata") or {}).get(field) or {}
        return {k: found[k] for k in values if k in found}

    def decide(obj: Body) -> Body | None:
        return None if current(obj) == dict(values) else {"metadata": {field: dict(values)}}

    return await patch_one(
        cluster, "label" if labels else "annotate", target, decide, lambda obj: {field: current(obj)}
    )


async def _annotate(cluster: Cluster, i: Inputs) -> Effect:
    return await annotate(cluster, i["kind"], i["namespace"], i["name"], i["values"])


async def _label(cluster: Cluster, i: Inputs) -> Effect:
    return await annotate(cluster, i["kind"], i["namespace"], i["name"], i["values"], labels=True)


_SERVICE = {"target": {"kind": "Service", "namespace": "shop", "name": "cart"}, "values": {"example.com/x": "1"}}


def _action(name: str, run: Run) -> Action:
    example = {"action": name} | _SERVICE
    return Action(
        name, Annotate, plan, on_cluster(owned(name, run)), each(OBJECTS, "get", "patch"), "Deployment", example=example
    )


ANNOTATE = _action("annotate", _annotate)
LABEL = _action("label", _label)
