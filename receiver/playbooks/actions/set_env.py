"""``set_env``: set environment variables of one container of a workload (a rolling update)."""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

import pydantic

from receiver.cluster import ActionFailed, Body, Cluster, Effect
from receiver.playbooks.actions.base import Action, Inputs, Render, StepBase, Template, on_cluster, patch_one
from receiver.playbooks.actions.owners import owned
from receiver.playbooks.actions.targets import WORKLOADS, WorkloadTarget, each, ref
from receiver.playbooks.templating import dns1123_label, env_name


class SetEnv(StepBase):
    """Set environment variables of a workload's container (a rolling update)."""

    action: Literal["set_env"]
    target: WorkloadTarget
    container: Template | None = None
    """Default: the first container."""
    env: Annotated[dict[str, Template], pydantic.Field(min_length=1)]


def plan(step: SetEnv, render: Render) -> dict[str, Any]:
    """The target, the container's name (None: the first) and the variables, rendered."""
    out = step.target.rendered(render)
    container = render.text(step.container) if step.container else None
    out["container"] = dns1123_label(container, "container name") if container else None
    out["env"] = {env_name(k): render.text(v) for k, v in step.env.items()}
    return out


def with_env(current: list[dict[str, Any]], wanted: dict[str, str]) -> list[dict[str, Any]]:
    """A container's env list with ``wanted`` set: existing entries replaced in place, new ones appended. Pure."""
    out = [dict(e) for e in current]
    for key, value in wanted.items():
        for entry in out:
            if entry.get("name") == key:
                if entry.get("value") != value or "valueFrom" in entry:
                    entry.clear()
                    entry.update({"name": key, "value": value})
                break
        else:
            out.append({"name": key, "value": value})
    return out


async def set_env(
    cluster: Cluster, kind: str, namespace: str, name: str, container: str | None, env: dict[str, str]
) -> Effect:
    """Set environment variables of one container (the first, if unnamed)."""
    target = ref({"kind": kind, "namespace": namespace, "name": name})

    def decide(obj: Body) -> Body | None:
        containers = _containers(obj)
        index = _index(containers, container, str(target))
        merged = with_env(containers[index].get("env") or [], env)
        if merged == (containers[index].get("env") or []):
            return None
        containers[index]["env"] = merged  # the whole list: right under merge and strategic-merge patches
        return {"spec": {"template": {"spec": {"containers": containers}}}}

    def state(obj: Body | None) -> dict[str, Any]:
        containers = _containers(obj or {})
        found = containers[_index(containers, container, str(target))]
        return {"env": {e["name"]: e.get("value") for e in found.get("env") or [] if e["name"] in env}}

    return await patch_one(cluster, "set_env", target, decide, state)


def _containers(obj: Body) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return copy.deepcopy(found)


def _index(containers: list[dict[str, Any]], name: str | None, target: str) -> int:
    if not containers:
        raise ActionFailed(f"{target}: it has no containers")
    if name is None:
        return 0
    for i, c in enumerate(containers):
        if c.get("name") == name:
            return i
    raise ActionFailed(f"{target}: no container named {name!r} (it has {[c.get('name') for c in containers]})")


async def _execute(cluster: Cluster, i: Inputs) -> Effect:
    return await set_env(cluster, i["kind"], i["namespace"], i["name"], i["container"], i["env"])


ACTION = Action(
    "set_env",
    SetEnv,
    plan,
    on_cluster(owned("set_env", _execute)),
    grants=each(WORKLOADS, "get", "patch"),
    default_kind="Deployment",
    example={"action": "set_env", "target": {"namespace": "shop", "name": "cart"}, "env": {"POOL": "50"}},
)
