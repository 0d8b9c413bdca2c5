"""``raise_hpa_max``: raise a HorizontalPodAutoscaler's ``maxReplicas`` by a step, never above a cap.

``KubeHpaMaxedOut`` fires when an autoscaler has sat at its ``maxReplicas``:
the demand is there and the ceiling stops it. This raises the ceiling by
``by`` (a number of replicas, or a percentage of the current maximum,
rounded up, at least one) up to ``cap``, never lowering it. At the cap
already, the step succeeds saying so (nothing changed), so the run's record
shows the ceiling was reached rather than nothing at all. The new maximum is
made absolute from the first read, so a retried write cannot raise it twice;
``cap`` counts toward the blast radius (the ``max_replicas`` guardrail).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic

from receiver.cluster import Body, Cluster, Effect, Ref
from receiver.playbooks.actions.base import Action, Blast, Grant, Inputs, Render, StepBase, on_cluster, patch_one
from receiver.playbooks.actions.targets import HPA, HpaTarget

Percent = Annotated[str, pydantic.Field(pattern=r"^[1-9][0-9]{0,3}%$")]
"""A percentage of the current value: ``"50%"`` (1% to 9999%)."""


class RaiseHpaMax(StepBase):
    """Raise an autoscaler's ``maxReplicas`` by ``by`` (replicas, or ``"50%"``), up to ``cap``; never lower it."""

    action: Literal["raise_hpa_max"]
    target: HpaTarget
    by: Annotated[int, pydantic.Field(ge=1)] | Percent
    cap: Annotated[int, pydantic.Field(ge=1)]
    """The highest ``maxReplicas`` it may set."""


def plan(step: RaiseHpaMax, render: Render) -> dict[str, Any]:
    """The autoscaler, the raise (``by`` replicas or ``by_percent``) and the cap."""
    by, percent = (None, int(step.by[:-1])) if isinstance(step.by, str) else (step.by, None)
    return step.target.rendered(render) | {"by": by, "by_percent": percent, "cap": step.cap}


def raised(current: int, cap: int, *, by: int | None = None, percent: int | None = None) -> int:
    """The ``maxReplicas`` to set: ``current`` raised by ``by`` or ``percent`` (rounded up, at least one), at most
    ``cap``; never below ``current``. Pure."""
    step = by if by is not None else math.ceil(current * (percent or 0) / 100)
    return max(current, min(cap, current + max(1, step)))


async def raise_hpa_max(
    cluster: Cluster, namespace: str, name: str, *, cap: int, by: int | None, percent: int | None
) -> Effect:
    """Raise the autoscaler's ``maxReplicas`` as ``raised`` decides; at the cap already, a success that says so."""
    target = Ref(HPA, namespace, name)

    def decide(obj: Body) -> Body | None:
        now = _maximum(obj)
        want = raised(now, cap, by=by, percent=percent)
        return None if want == now else {"spec": {"maxReplicas": want}}

    def state(obj: Body | None) -> dict[str, Any]:
        return {"maxReplicas": _maximum(obj or {})}

    def predict(before: Mapping[str, Any], body: Body) -> dict[str, Any]:
        return {**before, **body["spec"]}

    effect = await patch_one(cluster, "raise_hpa_max", target, decide, state, predict)
    found = effect.before.get("maxReplicas")
    if effect.changed or found is None:
        return effect
    at = "already at the cap" if found == cap else f"maxReplicas {found} is above the cap"
    return dataclasses.replace(effect, note=f"{at} {cap}: nothing to raise")


def _maximum(obj: Body) -> int:
    return int((obj.get("spec") or {}).get("maxReplicas") or 0)


async def _execute(cluster: Cluster, i: Inputs) -> Effect:
    return await raise_hpa_max(cluster, i["namespace"], i["name"], cap=i["cap"], by=i["by"], percent=i["by_percent"])


ACTION = Action(
    "raise_hpa_max",
    RaiseHpaMax,
    plan,
    on_cluster(_execute),
    grants={"HorizontalPodAutoscaler": (Grant(HPA, ("get", "patch")),)},
    default_kind="HorizontalPodAutoscaler",
    blast=lambda i: Blast(replicas=int(i.get("cap", 0))),
    example={
        "action": "raise_hpa_max",
        "target": {"namespace": "shop", "name": "cart"},
        "by": "50%",
        "cap": 20,
    },
)
