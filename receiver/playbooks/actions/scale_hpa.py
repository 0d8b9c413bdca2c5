"""``scale_hpa``: raise (or set) a HorizontalPodAutoscaler's ``minReplicas`` and ``maxReplicas``.

When a workload scaled by an autoscaler saturates, scaling the workload
itself is undone by the autoscaler at its next sync; the bounds of the
autoscaler are what to change. By default a bound is only raised, never
lowered (``lower: true`` sets it as given). The highest bound asked for
counts toward the blast radius: the ``max_replicas`` guardrail blocks a run
that would go above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic

from receiver.cluster import ActionFailed, Body, Cluster, Effect, Ref
from receiver.playbooks.actions.base import Action, Blast, Grant, Inputs, Render, StepBase, on_cluster, patch_one
from receiver.playbooks.actions.targets import HPA, HpaTarget

Replicas = Annotated[int, pydantic.Field(ge=1)]


class ScaleHpa(StepBase):
    """Raise a HorizontalPodAutoscaler's ``min_replicas`` and/or ``max_replicas`` (``lower: true``: set them)."""

    action: Literal["scale_hpa"]
    target: HpaTarget
    min_replicas: Replicas | None = None
    max_replicas: Replicas | None = None
    lower: bool = False
    """Also lower a bound that is higher than asked (default: only raise)."""

    @pydantic.model_validator(mode="after")
    def _some(self) -> ScaleHpa:
        if self.min_replicas is None and self.max_replicas is None:
            raise ValueError("give min_replicas, max_replicas or both")
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        return self


def plan(step: ScaleHpa, render: Render) -> dict[str, Any]:
    """The autoscaler and the bounds asked for."""
    asked = {"min_replicas": step.min_replicas, "max_replicas": step.max_replicas, "lower": step.lower}
    return step.target.rendered(render) | asked


def bounds(current: tuple[int, int], asked: tuple[int | None, int | None], *, lower: bool) -> tuple[int, int]:
    """The (minReplicas, maxReplicas) to set: each asked bound, unless it would lower one and ``lower`` is off. Pure."""
    return (_bound(current[0], asked[0], lower), _bound(current[1], asked[1], lower))


def _bound(current: int, asked: int | None, lower: bool) -> int:
    if asked is None or (asked < current and not lower):
        return current
    return asked


async def scale_hpa(
    cluster: Cluster, namespace: str, name: str, *, min_replicas: int | None, max_replicas: int | None, lower: bool
) -> Effect:
    """Set the autoscaler's bounds as ``bounds`` decides; min above max fails and changes nothing."""
    target = Ref(HPA, namespace, name)

    def decide(obj: Body) -> Body | None:
        now = _current(obj)
        low, high = bounds(now, (min_replicas, max_replicas), lower=lower)
        if low > high:
            raise ActionFailed(f"{target}: minReplicas {low} would be above maxReplicas {high}")
        changed = {k: v for k, v, was in (("minReplicas", low, now[0]), ("maxReplicas", high, now[1])) if v != was}
        return {"spec": changed} if changed else None

    def state(obj: Body | None) -> dict[str, Any]:
        low, high = _current(obj or {})
        return {"minReplicas": low, "maxReplicas": high}

    def predict(before: Mapping[str, Any], body: Body) -> dict[str, Any]:
        return {**before, **body["spec"]}

    return await patch_one(cluster, "scale_hpa", target, decide, state, predict)


def _current(obj: Body) -> tuple[int, int]:
    spec = obj.get("spec") or {}
    return int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 0)


async def _execute(cluster: Cluster, i: Inputs) -> Effect:
    return await scale_hpa(
        cluster,
        i["namespace"],
        i["name"],
        min_replicas=i["min_replicas"],
        max_replicas=i["max_replicas"],
        lower=i["lower"],
    )


def _blast(i: Inputs) -> Blast:
    return Blast(replicas=max(i.get("min_replicas") or 0, i.get("max_replicas") or 0))


ACTION = Action(
    "scale_hpa",
    ScaleHpa,
    plan,
    on_cluster(_execute),
    grants={"HorizontalPodAutoscaler": (Grant(HPA, ("get", "patch")),)},
    default_kind="HorizontalPodAutoscaler",
    blast=_blast,
    example={"action": "scale_hpa", "target": {"namespace": "shop", "name": "cart"}, "max_replicas": 12},
)
