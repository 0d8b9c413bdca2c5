"""``rollout_restart``: restart a workload's pods by stamping its pod template, as ``kubectl rollout restart`` does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from receiver.cluster import Body, Cluster, Effect
from receiver.playbooks.actions.base import Action, Inputs, Render, StepBase, on_cluster, patch_one
from receiver.playbooks.actions.owners import owned
from receiver.playbooks.actions.targets import WORKLOADS, WorkloadTarget, each, ref

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class RolloutRestart(StepBase):
    """Restart a workload's pods, as ``kubectl rollout restart`` does."""

    action: Literal["rollout_restart"]
    target: WorkloadTarget


def plan(step: RolloutRestart, render: Render) -> dict[str, Any]:
    """The target."""
    return step.target.rendered(render)


async def rollout_restart(cluster: Cluster, kind: str, namespace: str, name: str) -> Effect:
    """Restart the workload's pods: stamp its pod template with the time."""
    target = ref({"kind": kind, "namespace": namespace, "name": name})
    stamp = cluster.now().isoformat()

    def decide(obj: Body) -> Body | None:
        return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}

    def state(obj: Body | None) -> dict[str, Any]:
        metadata = (obj or {}).get("spec", {}).get("template", {}).get("metadata") or {}
        return {"restartedAt": (metadata.get("annotations") or {}).get(RESTARTED_AT)}

    def predict(before: Mapping[str, Any], body: Body) -> dict[str, Any]:
        return dict(before) | {"restartedAt": stamp}

    return await patch_one(cluster, "rollout_restart", target, decide, state, predict)


async def _execute(cluster: Cluster, i: Inputs) -> Effect:
    return await rollout_restart(cluster, i["kind"], i["namespace"], i["name"])


ACTION = Action(
    "rollout_restart",
    RolloutRestart,
    plan,
    on_cluster(owned("rollout_restart", _execute)),
    grants=each(WORKLOADS, "get", "patch"),
    default_kind="Deployment",
    example={"action": "rollout_restart", "target": {"kind": "StatefulSet", "namespace": "shop", "name": "cart"}},
)
