"""``wait_for_ready``: watch a workload's pods after a remediation, and end the playbook once they are healthy.

After deleting a crash-looping pod, the alert cannot tell whether the fix
worked: ``KubePodCrashLooping`` names the deleted pod, which no longer
exists, and its replacement would only alert after the rule's 15 minutes.
The pods can tell: this step reads the workload (named, or found as the
owner of the alert's pod with ``owner_of``) and its pods until they are all
ready, as many as it wants, none restarting, for ``stable``; then the
playbook ends as a success (the later steps, a rollback say, are not
needed). If they are not healthy within ``within``, the step succeeds and
says what it saw last ("web-7d4b9c6f5-k8s7d: CrashLoopBackOff, 9 restarts"),
and the next steps run. Whether pods are healthy is a pure function of what
was read (``members``, ``health``); it reads on the executor's timer, so
tests watch for minutes in no time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import pydantic

from receiver.cluster import ActionFailed, Body, Cluster, Ref, Unread
from receiver.durations import Duration, parse_duration
from receiver.playbooks.actions.base import Action, Context, Done, Grant, Inputs, Outcome, Render, StepBase
from receiver.playbooks.actions.owners import resolve
from receiver.playbooks.actions.targets import KINDS, POD, REPLICASET, WorkloadTarget

POLL_SECONDS = 10.0
"""How often the pods are read while watching."""


class WaitForReady(StepBase):
    """Watch a workload's pods: end the playbook when they are all ready for ``stable``, go on after ``within``."""

    action: Literal["wait_for_ready"]
    target: WorkloadTarget
    stable: Duration = timedelta(minutes=1)
    """How long every pod must stay ready without a restart."""
    within: Duration = timedelta(minutes=5)
    """How long to watch at most; the step's timeout defaults to this plus 10s."""

    @classmethod
    def least_time_of(cls, raw: Mapping[str, Any]) -> timedelta | None:
        """Its ``within``, if it is a duration."""
        try:
            return parse_duration(raw.get("within", "5m"))
        except ValueError:
            return None  # the field's own validation says what is wrong

    def least_time(self) -> timedelta:
        """Its ``within``: a watch that finds the pods unhealthy lasts that long."""
        return self.within

    @pydantic.model_validator(mode="after")
    def _stable_within(self) -> WaitForReady:
        if self.stable > self.within:
            raise ValueError(f"stable ({self.stable}) is longer than within ({self.within}): it could never hold")
        return self


def plan(step: WaitForReady, render: Render) -> dict[str, Any]:
    """The workload, and how long to watch, in seconds."""
    seconds = {"stable_seconds": step.stable.total_seconds(), "within_seconds": step.within.total_seconds()}
    return step.target.rendered(render) | seconds


@dataclass(frozen=True, slots=True)
class Health:
    """What the pods of a workload looked like at one read."""

    healthy: bool
    summary: str


ENDED = frozenset({"Succeeded", "Failed"})
"""Phases of pods that will not run again (an evicted pod is Failed): not the workload's to wait for."""


def members(workload: Body, pods: Sequence[Body], replica_sets: Sequence[Body]) -> list[Body]:
    """The pods ``workload`` controls (a Deployment through its ReplicaSets) that run or will: not being deleted,
    not ended (evicted, completed). Pure."""
    uid = workload["metadata"].get("uid")
    controllers = {uid} | {rs["metadata"].get("uid") for rs in replica_sets if _controller(rs) == uid}
    return [
        p
        for p in pods
        if _controller(p) in controllers
        and not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") not in ENDED
    ]


def health(workload: Body, pods: Sequence[Body], restarts: Mapping[str, int]) -> Health:
    """Whether every pod is ready and none restarted since ``restarts`` (pod uid → restart count) was taken,
    and as many as the workload wants; a sentence saying what was seen. Pure."""
    wanted = _wanted(workload)
    troubles = [trouble for p in pods if (trouble := _trouble(p, restarts.get(p["metadata"].get("uid", ""), 0)))]
    ready = len(pods) - len(troubles)
    summary = f"{ready}/{wanted} pods ready" + (f"; {'; '.join(troubles[:3])}" if troubles else "")
    return Health(not troubles and len(pods) >= wanted, summary)


def counts(pods: Sequence[Body]) -> dict[str, int]:
    """Each pod's restarts so far (all its containers), by uid. Pure."""
    return {p["metadata"].get("uid", ""): _restarts(p) for p in pods}


def _controller(obj: Body) -> str | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r.get("uid") for r in refs if r.get("controller") is True), None)


def _wanted(workload: Body) -> int:
    if workload.get("kind") == "DaemonSet":
        return int((workload.get("status") or {}).get("desiredNumberScheduled", 1))
    replicas = (workload.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _restarts(pod: Body) -> int:
    return sum(int(c.get("restartCount", 0)) for c in (pod.get("status") or {}).get("containerStatuses") or [])


def _trouble(pod: Body, restarts_before: int) -> str | None:
    """Why ``pod`` is not healthy, or None."""
    name = pod["metadata"]["name"]
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    restarts = _restarts(pod)
    for status in statuses:
        if not status.get("ready"):
            state = status.get("state") or {}
            reason = next((s.get("reason") for s in state.values() if isinstance(s, dict) and s.get("reason")), None)
            return f"{name}: {reason or 'not ready'}, {restarts} restarts"
    if not statuses:
        return f"{name}: no container has started"
    if restarts > restarts_before:
        return f"{name}: restarted {restarts - restarts_before} times while watched"
    return None


def _read(cluster: Cluster, kind: str, namespace: str, name: str) -> tuple[Body, list[Body]]:
    """The workload and its pods (blocking reads: on a worker thread); only pods its selector matches are listed."""
    workload = cluster.get(Ref(KINDS[kind], namespace, name))
    about = f"{kind}/{namespace}/{name}"
    selector = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or None
    replica_sets = cluster.objects(REPLICASET, namespace, about, labels=selector) if kind == "Deployment" else []
    return workload, members(workload, cluster.objects(POD, namespace, about, labels=selector), replica_sets)


async def execute(context: Context, inputs: Inputs) -> Done:
    """Read the pods every ``POLL_SECONDS`` until they are healthy for ``stable``, or ``within`` has passed.

    ``within`` counts from the step's start and the last sleep is cut to it, so the watch ends by itself before
    its step's limit (``within`` plus 10s). A read that fails while watching (the API server briefly away) is
    not the pods' fault: the watch goes on and says so if it ends that way.
    """
    timer = context.timer
    started = timer.monotonic()
    try:
        aimed, resolved = await resolve(context.cluster, inputs, "wait_for_ready")
        read = functools.partial(_read, context.cluster, aimed["kind"], aimed["namespace"], aimed["name"])
        workload, pods = await context.cluster.read(read)
    except Unread as err:
        return Done(Outcome.SKIPPED, reason=f"{err.reason}: the pods were not watched")
    what = f"{aimed['kind']} {aimed['namespace']}/{aimed['name']}"
    via = f" (the owner of {resolved[0]})" if resolved else ""
    stable, within = float(inputs["stable_seconds"]), float(inputs["within_seconds"])
    baseline, healthy_since, unread = counts(pods), None, ""
    while True:
        seen = health(workload, pods, baseline)
        now = timer.monotonic()
        healthy_since = (healthy_since if healthy_since is not None else now) if seen.healthy and not unread else None
        if healthy_since is not None and now - healthy_since >= stable:
            healthy = f"{what}{via} is healthy: {seen.summary}, for {now - healthy_since:g}s"
            return Done(Outcome.RESOLVED, reason=healthy, resolved=resolved)
        if now - started >= within:
            last = f"{seen.summary}{unread}"
            unhealthy = f"{what}{via} is not healthy after {now - started:g}s: {last}"
            return Done(Outcome.SUCCEEDED, reason=unhealthy, resolved=resolved)
        await timer.sleep(min(POLL_SECONDS, within - (now - started)))
        try:
            workload, pods = await context.cluster.read(read)
            unread = ""
        except ActionFailed as err:
            if err.status in (403, 404):
                raise
            unread = f" (then the pods could not be read: {err.reason})"


def _grants(kind: str) -> tuple[Grant, ...]:
    pods = Grant(POD, ("list",))
    if kind == "Deployment":
        return (Grant(KINDS[kind], ("get",)), Grant(REPLICASET, ("list",)), pods)
    return (Grant(KINDS[kind], ("get",)), pods)


ACTION = Action(
    "wait_for_ready",
    WaitForReady,
    plan,
    execute,
    grants={kind: _grants(kind) for kind in ("Deployment", "StatefulSet", "DaemonSet")},
    default_kind="Deployment",
    example={
        "action": "wait_for_ready",
        "target": {"namespace": "shop", "owner_of": {"kind": "Pod", "name": "cart-7d9f-x"}},
        "stable": "2m",
        "within": "6m",
    },
)
