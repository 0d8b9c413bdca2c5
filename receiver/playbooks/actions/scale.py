"""``scale``: set a Deployment's or StatefulSet's replicas, absolutely or relatively, clamped to ``min``..``max``.

A relative scale (``by: 2``) is made absolute from the first read, so a
retried write cannot apply it twice. Its ``max`` counts toward the blast
radius (the ``max_replicas`` guardrail).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic

from receiver.cluster import Body, Cluster, Effect
from receiver.playbooks.actions.base import Action, Blast, Inputs, Render, StepBase, on_cluster, patch_one
from receiver.playbooks.actions.owners import owned
from receiver.playbooks.actions.targets import SCALABLE, ScalableTarget, each, ref


class Scale(StepBase):
    """Set a workload's replicas, absolutely or relatively, clamped to ``min``..``max``."""

    action: Literal["scale"]
    target: ScalableTarget
    replicas: Annotated[int, pydantic.Field(ge=0)] | None = None
    by: int | None = None
    """Relative change, e.g. ``2`` or ``-1``."""
    min: Annotated[int, pydantic.Field(ge=0)] = 1
    max: Annotated[int, pydantic.Field(ge=1)] = 10

    @pydantic.model_validator(mode="after")
    def _one_of(self) -> Scale:
        if (self.replicas is None) == (self.by is None):
            raise ValueError("give exactly one of replicas (absolute) and by (relative)")
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


def plan(step: Scale, render: Render) -> dict[str, Any]:
    """The target, and the replicas asked for with their bounds."""
    return step.target.rendered(render) | {"replicas": step.replicas, "by": step.by, "min": step.min, "max": step.max}


def scaled(current: int, replicas: int | None, by: int | None, low: int, high: int) -> int:
    """The replicas to set: ``replicas``, or ``current + by``, clamped to ``low``..``high``. Pure."""
    want = replicas if replicas is not None else current + (by or 0)
    return max(low, min(high, want))


async def scale(
    cluster: Cluster, kind: str, namespace: str, name: str, *, replicas: int | None, by: int | None, low: int, high: int
) -> Effect:
    """Set replicas to ``replicas``, or current + ``by``, clamped to ``low``..``high``."""
    target = ref({"kind": kind, "namespace": namespace, "name": name})

    def decide(obj: Body) -> Body | None:
        now = obj["spec"].get("replicas")
        want = scaled(now or 0, replicas, by, low, high)
        return None if want == now else {"spec": {"replicas": want}}

    def state(obj: Body | None) -> dict[str, Any]:
        return {"replicas": (obj or {}).get("spec", {}).get("replicas")}

    def predict(before: Mapping[str, Any], body: Body) -> dict[str, Any]:
        return dict(before) | {"replicas": body["spec"]["replicas"]}

    return await patch_one(cluster, "scale", target, decide, state, predict)


async def _execute(cluster: Cluster, i: Inputs) -> Effect:
    return await scale(
        cluster, i["kind"], i["namespace"], i["name"], replicas=i["replicas"], by=i["by"], low=i["min"], high=i["max"]
    )


ACTION = Action(
    "scale",
    Scale,
    plan,
    on_cluster(owned("scale", _execute)),
    grants=each(SCALABLE, "get", "patch"),
    default_kind="Deployment",
    blast=lambda i: Blast(replicas=int(i.get("max", 0))),
    example={"action": "scale", "target": {"namespace": "shop", "name": "cart"}, "by": 2, "max": 8},
)
