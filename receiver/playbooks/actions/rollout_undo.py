"""``rollout_undo``: roll a Deployment back to its previous revision, found through its ReplicaSets.

With ``max_age``, only if its last rollout is younger: an old rollout is not
the cause, and leaving it alone is a skip, not a failure.

Two playbooks may answer one bad rollout (``KubeDeploymentRolloutStuck`` and
``KubeContainerWaiting`` both fire for an image that cannot be pulled), and
``kubectl rollout undo`` twice goes back to the bad revision. So a rollback is
never undone by another: when the Deployment already runs the template it
would go back to, nothing changes; when its current revision is itself a
rollback (the controller re-used an older ReplicaSet, which is older than a
ReplicaSet of a lower revision), it is left alone and says so.
"""

from __future__ import annotations

import copy
import functools
from datetime import datetime
from typing import Any, Literal

from receiver.cluster import ActionFailed, Body, Change, Cluster, Effect, Ref, TooOld
from receiver.durations import Duration
from receiver.playbooks.actions.base import Action, Grant, Inputs, Render, StepBase, on_cluster
from receiver.playbooks.actions.owners import owned
from receiver.playbooks.actions.targets import DEPLOYMENT, REPLICASET, DeploymentTarget

REVISION = "deployment.kubernetes.io/revision"


class RolloutUndo(StepBase):
    """Roll a Deployment back to its previous revision (only if its last rollout is younger than ``max_age``)."""

    action: Literal["rollout_undo"]
    target: DeploymentTarget
    max_age: Duration | None = None


def plan(step: RolloutUndo, render: Render) -> dict[str, Any]:
    """The Deployment, and ``max_age_seconds`` if given."""
    out = step.target.rendered(render)
    if step.max_age is not None:
        out["max_age_seconds"] = step.max_age.total_seconds()
    return out


async def rollout_undo(cluster: Cluster, namespace: str, name: str, max_age: float | None = None) -> Effect:
    """Roll the Deployment back to its previous revision (with ``max_age`` seconds: only a younger rollout)."""
    target = Ref(DEPLOYMENT, namespace, name)

    def decide(obj: Body) -> Body | None:
        listed = cluster.objects(REPLICASET, namespace, str(target))
        revisions = {r: rs for rs in listed if (r := _revision(rs)) is not None and _owned(rs, name)}
        current = _revision(obj)
        if current is None or current not in revisions:
            raise ActionFailed(f"{target}: its current revision has no ReplicaSet: nothing to roll back to")
        older = [r for r in revisions if r < current]
        if not older:
            raise ActionFailed(f"{target}: revision {current} is the first: nothing to roll back to")
        created = _created(revisions[current])
        if rolled_back := [r for r in older if _created(revisions[r]) > created]:
            raise TooOld(
                f"{target}: revision {current} is itself a rollback (its ReplicaSet is older than revision "
                f"{max(rolled_back)}'s): not rolled back again"
            )
        age = (cluster.now() - created).total_seconds()
        if max_age is not None and age > max_age:
            raise TooOld(f"{target}: its last rollout is {age:.0f}s old, more than {max_age:.0f}s: not rolled back")
        template = _unhashed(revisions[max(older)]["spec"]["template"])
        if template == _unhashed(obj.get("spec", {}).get("template", {})):
            return None  # already running the previous revision's template: a second rollback changes nothing
        return {"spec": {"template": template}}

    def state(obj: Body | None) -> dict[str, Any]:
        containers = (obj or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
        return {"revision": _revision(obj or {}), "images": [c.get("image") for c in containers]}

    def write(body: Body) -> Body:  # the template whole, as kubectl rollout undo sets it: a merge would keep
        return cluster.replace(target, "/spec/template", body["spec"]["template"])  # what the bad revision added

    read = functools.partial(cluster.get, target)
    return await cluster.change(Change("rollout_undo", str(target), read, decide, write, state))


def _created(replica_set: Body) -> datetime:
    return datetime.fromisoformat(replica_set["metadata"]["creationTimestamp"])


def _unhashed(template: Body) -> Body:
    """A pod template without the ``pod-template-hash`` label its ReplicaSet added (a copy)."""
    out = copy.deepcopy(template)
    out.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return out


def _revision(obj: Body) -> int | None:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    return int(text) if text and text.isdigit() else None


def _owned(replica_set: Body, deployment: str) -> bool:
    owners = (replica_set.get("metadata") or {}).get("ownerReferences") or []
    return any(o.get("kind") == "Deployment" and o.get("name") == deployment for o in owners)


async def _execute(cluster: Cluster, i: Inputs) -> Effect:
    return await rollout_undo(cluster, i["namespace"], i["name"], i.get("max_age_seconds"))


ACTION = Action(
    "rollout_undo",
    RolloutUndo,
    plan,
    on_cluster(owned("rollout_undo", _execute)),
    grants={"Deployment": (Grant(DEPLOYMENT, ("get", "patch")), Grant(REPLICASET, ("list",)))},
    default_kind="Deployment",
    example={
        "action": "rollout_undo",
        "target": {"namespace": "shop", "owner_of": {"kind": "Pod", "name": "{{ alert.labels.pod }}"}},
        "max_age": "30m",
    },
)
