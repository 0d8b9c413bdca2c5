"""Workload owners: the object a step acts on, found at run time from the pod or autoscaler an alert names.

kube-prometheus' alerts name pods (``KubePodCrashLooping``: ``namespace``,
``pod``, ``container``) and autoscalers (``KubeHpaMaxedOut``:
``horizontalpodautoscaler``), not the workload to roll back or scale. A
target with ``owner_of`` names that object instead; when the step runs, its
owner is read through the API: a pod's controller ownerReference, followed
through a ReplicaSet to its Deployment and through a Job to its CronJob (the
top controller); an autoscaler's ``spec.scaleTargetRef``. ownerReferences
and scale targets are namespace-local, so the owner is in the namespace the
plan checked against the guardrails. The step then acts on the owner if its
action accepts that kind. A pod with no controller (a bare pod) fails the
step with a reason a person can act on; an owner of a kind the action does
not act on (a StatefulSet's pod, for a Deployment's rollback) skips it,
saying so: the playbook does not apply there, and a failure would count
toward its circuit breaker. What was followed is recorded in the step's
effect (``Effect.resolved``).

The decisions (which reference is the controller, where the chain ends,
whether the action accepts it) are pure functions of the objects read; the
reads go through the ``Cluster`` on a worker thread. What resolving needs
from the API (``get`` on pods, ReplicaSets and Jobs, or on autoscalers) is
granted like every other permission (``needs``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from receiver.cluster import ActionFailed, Body, Cluster, Effect, LeftAlone, Ref, Resource, Unread
from receiver.playbooks.actions.base import Action, Grant, Inputs, Permission
from receiver.playbooks.actions.targets import (
    DAEMONSET,
    DEPLOYMENT,
    HPA,
    POD,
    REACHABLE,
    REPLICASET,
    STATEFULSET,
    OwnedTarget,
    kinds_of,
)

JOB = Resource("Job", "batch", "v1", "jobs")
CRONJOB = Resource("CronJob", "batch", "v1", "cronjobs")
KNOWN = {r.kind: r for r in (POD, REPLICASET, DEPLOYMENT, STATEFULSET, DAEMONSET, JOB, CRONJOB, HPA)}
FOLLOWED = frozenset({"ReplicaSet", "Job"})
"""Controllers that are themselves controlled: a ReplicaSet by its Deployment, a Job by its CronJob."""
MAX_LINKS = 4
"""A bound on the chain (Pod → ReplicaSet → Deployment is three)."""
RESOLVE: Mapping[str, tuple[Grant, ...]] = {
    "Pod": (Grant(POD, ("get",)), Grant(REPLICASET, ("get",)), Grant(JOB, ("get",))),
    "HorizontalPodAutoscaler": (Grant(HPA, ("get",)),),
}
"""What resolving the owner of each kind of object reads."""
Run = Callable[[Cluster, Inputs], Awaitable[Effect]]


@dataclass(frozen=True, slots=True)
class Link:
    """One object of the chain. ``kind`` is ``Kind (apiVersion)`` for a kind this module does not know."""

    kind: str
    namespace: str
    name: str
    uid: str | None = None

    def __str__(self) -> str:
        """``Kind/namespace/name``, as records name objects."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def said(self) -> str:
        """How a sentence names it: ``pod shop/web-1``, ``Deployment shop/web``."""
        return f"{'pod' if self.kind == 'Pod' else self.kind} {self.namespace}/{self.name}"


def owner(link: Link, obj: Body) -> Link | None:
    """The next object up from ``link`` (read as ``obj``): an autoscaler's scale target, else the controller
    ownerReference; None when there is none. Pure."""
    if link.kind == "HorizontalPodAutoscaler":
        target = (obj.get("spec") or {}).get("scaleTargetRef") or {}
        if not target.get("kind") or not target.get("name"):
            return None
        return Link(_kind(target.get("apiVersion", ""), target["kind"]), link.namespace, target["name"])
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") is True and ref.get("kind") and ref.get("name"):
            return Link(_kind(ref.get("apiVersion", ""), ref["kind"]), link.namespace, ref["name"], ref.get("uid"))
    return None


def _kind(api_version: str, kind: str) -> str:
    """``kind`` if it is the built-in kind of that name (its API group, or no apiVersion: a scaleTargetRef may
    leave it out), else ``Kind (apiVersion)``."""
    known = KNOWN.get(kind)
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    if known is not None and (not api_version or known.group == group):
        return kind
    return f"{kind} ({api_version or 'no apiVersion'})"


def same(link: Link, obj: Body) -> None:
    """ActionFailed if ``obj`` is not the object ``link`` refers to (deleted and made again: another uid). Pure."""
    found = (obj.get("metadata") or {}).get("uid")
    if link.uid and found and found != link.uid:
        raise ActionFailed(f"{link.said} is not the one its owner reference names (uid {found}, not {link.uid})")


def chosen(chain: Sequence[Link], kinds: Sequence[str], action: str) -> Link:
    """The object to act on: the end of ``chain`` if ``action`` accepts its kind; ActionFailed saying why not. Pure."""
    start, top = chain[0], chain[-1]
    if len(chain) == 1:
        if start.kind == "HorizontalPodAutoscaler":
            raise ActionFailed(f"{start.said} has no scaleTargetRef: nothing for {action} to act on")
        raise ActionFailed(f"{start.said} has no controller: nothing for {action} to act on")
    if top.kind in kinds:
        return top
    verb = "scales" if start.kind == "HorizontalPodAutoscaler" else "is owned by"
    through = f" (through {', '.join(link.said for link in chain[1:-1])})" if len(chain) > 2 else ""
    # An owner of another kind is no fault of the run (a StatefulSet's crash-looping pod, for a Deployment's
    # rollback): the step is skipped, saying so; failing would count toward the playbook's circuit breaker.
    raise LeftAlone(f"{start.said} {verb} {top.said}{through}; {action} acts on {' or '.join(kinds)}")


def walk(cluster: Cluster, start: Link) -> list[Link]:
    """The chain from ``start`` to its top controller or scale target (blocking reads: on a worker thread)."""
    chain = [start]
    obj = cluster.get(_ref(start))
    while len(chain) < MAX_LINKS:
        up = owner(chain[-1], obj)
        if up is None:
            break
        chain.append(up)
        if up.kind not in FOLLOWED:
            break
        obj = cluster.get(_ref(up))
        same(up, obj)
    return chain


def _ref(link: Link) -> Ref:
    return Ref(KNOWN[link.kind], link.namespace, link.name)


async def ahead(cluster: Cluster, planned: Sequence[Inputs]) -> dict[str, list[Link]]:
    """The chain of every object an ``owner_of`` of a run names, read when the run starts (a step that deletes the
    pod may come before the one that acts on its owner); one that cannot be read now is read again by its step."""
    found: dict[str, list[Link]] = {}
    for inputs in planned:
        start = _start(inputs)
        if start is None or str(start) in found:
            continue
        try:
            found[str(start)] = await cluster.read(functools.partial(walk, cluster, start))
        except ActionFailed:
            continue
    return found


def with_chain(inputs: Inputs, chains: Mapping[str, list[Link]]) -> Inputs:
    """``inputs`` with the chain ``ahead`` read for its ``owner_of`` (``owner_chain``), if it read one."""
    start = _start(inputs)
    chain = chains.get(str(start)) if start is not None else None
    return inputs if chain is None else {**inputs, "owner_chain": tuple(chain)}


def aimed(inputs: Inputs) -> Inputs | None:
    """``inputs`` naming the owner ``ahead`` read for its ``owner_of`` (``kind``, ``name``), when it read one its
    step acts on; None otherwise (no ``owner_of``, nothing read, or an owner the step will leave alone). Pure."""
    chain: Sequence[Link] = inputs.get("owner_chain") or ()
    if _start(inputs) is None or len(chain) < 2 or chain[-1].kind not in inputs["kinds"]:
        return None
    return {**inputs, "kind": chain[-1].kind, "name": chain[-1].name}


def _start(inputs: Inputs) -> Link | None:
    of = inputs.get("owner_of")
    return None if of is None else Link(of["kind"], inputs["namespace"], of["name"])


async def resolve(cluster: Cluster, inputs: Inputs, action: str) -> tuple[Inputs, tuple[str, ...]]:
    """``inputs`` aimed at the owner (``kind``, ``name``) and the chain followed (``Kind/namespace/name`` each),
    when the planned target is ``owner_of``; as planned, with no chain, otherwise. Unread without a client;
    ActionFailed saying why there is no owner ``action`` can act on."""
    start = _start(inputs)
    if start is None:
        return inputs, ()
    chain: Sequence[Link] = inputs.get("owner_chain") or ()
    try:
        chain = chain or await cluster.read(functools.partial(walk, cluster, start))
    except Unread:
        raise
    except ActionFailed as err:
        if err.status == 404:
            raise ActionFailed(f"{err.reason}: its owner cannot be resolved", 404) from None
        raise
    resolved = tuple(str(link) for link in chain)
    try:
        target = chosen(chain, inputs["kinds"], action)
    except ActionFailed as err:
        raise type(err)(err.reason, err.status, resolved) from None
    return {**inputs, "kind": target.kind, "name": target.name}, resolved


def owned(action: str, run: Run) -> Run:
    """``run``, acting on the owner when the planned target is ``owner_of`` (else as it was planned)."""

    async def execute(cluster: Cluster, inputs: Inputs) -> Effect:
        try:
            aimed, resolved = await resolve(cluster, inputs, action)
        except Unread as err:
            return Effect(
                action, f"the owner of {_start(inputs)}", {}, {}, True, f"{err.reason}: the owner was not resolved"
            )
        if not resolved:
            return await run(cluster, inputs)
        try:
            effect = await run(cluster, aimed)
        except ActionFailed as err:
            raise type(err)(f"{' -> '.join(resolved)}: {err.reason}", err.status, resolved) from None
        return dataclasses.replace(effect, resolved=resolved)

    return execute


def owner_kinds(action: Action) -> dict[str, tuple[str, ...]]:
    """For each kind ``owner_of`` may name, the kinds of owner the action can act on (empty: no ``owner_of``)."""
    field = action.step.model_fields.get("target")
    model: Any = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, OwnedTarget)):
        return {}
    return {of: found for of, reach in REACHABLE.items() if (found := tuple(k for k in kinds_of(model) if k in reach))}


def resolving(of: str) -> frozenset[Permission]:
    """What resolving the owner of an ``of`` (a Pod, a HorizontalPodAutoscaler) reads."""
    return frozenset().union(*(g.permissions() for g in RESOLVE[of]))


def needs(action: Action, of: str, kinds: Sequence[str]) -> frozenset[Permission]:
    """What a step with ``owner_of`` needs: resolving the owner of an ``of``, and acting on each kind it accepts."""
    return resolving(of).union(*(action.needs(kind) for kind in kinds))
