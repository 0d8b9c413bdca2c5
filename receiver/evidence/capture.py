"""Reading the evidence from the cluster: the few objects, logs and events an alert's subject points to.

The one effectful part of evidence. Every read goes through the Kubernetes
adapter (``receiver.kube``) on a worker thread, each with a short timeout
and the whole capture under a deadline; what is made of it (views, redacted
logs and messages, the bounded content: CPU work on text a pod chose) is made
on a worker thread too, so no capture holds the event loop: what was read when the deadline
passes is kept, and the evidence says it timed out. A read that fails (403,
404, the API server unreachable) is recorded in the evidence's ``errors``
and the capture goes on with the rest; nothing here raises. Secrets are
never read: only what ``receiver.evidence.permissions.READS`` names is, and a
test checks every request against it (the RBAC the chart grants is made from it).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from receiver.cluster import ActionFailed, Body, Ref, Resource
from receiver.evidence.content import (
    Bounds,
    bounded,
    claim_view,
    event_views,
    hpa_view,
    log_view,
    node_by_address,
    node_view,
    pod_view,
    rollouts,
    summary,
)
from receiver.evidence.records import Outcome
from receiver.evidence.subject import Subject, subject_of
from receiver.incidents.subject import SubjectPolicy
from receiver.kube import Kube
from receiver.playbooks.actions.owners import Link, walk

T = TypeVar("T")
POD = Resource("Pod", "", "v1", "pods")
EVENT = Resource("Event", "", "v1", "events")
NODE = Resource("Node", "", "v1", "nodes", namespaced=False)
CLAIM = Resource("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims")
HPA = Resource("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers")
STORAGE_CLASS = Resource("StorageClass", "storage.k8s.io", "v1", "storageclasses", namespaced=False)
OWNERS = {
    r.kind: r
    for r in (
        Resource("ReplicaSet", "apps", "v1", "replicasets"),
        Resource("Deployment", "apps", "v1", "deployments"),
        Resource("StatefulSet", "apps", "v1", "statefulsets"),
        Resource("DaemonSet", "apps", "v1", "daemonsets"),
        Resource("Job", "batch", "v1", "jobs"),
        Resource("CronJob", "batch", "v1", "cronjobs"),
    )
}
"""The workloads an owner chain may pass through (Pod -> ReplicaSet -> Deployment, Job -> CronJob...)."""


@dataclass(frozen=True, slots=True)
class Captured:
    """What one capture found: its outcome, the summary line and the content (JSON values)."""

    outcome: Outcome
    summary: str
    content: Mapping[str, Any]


@dataclass
class _Gathered:
    """What a capture has read so far (kept when its deadline passes), and what failed."""

    content: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    reads: int = 0
    """Reads that succeeded."""


async def capture(
    kube: Kube, labels: Mapping[str, str], first_alert: datetime, bounds: Bounds, policy: SubjectPolicy
) -> Captured:
    """Read the evidence of an alert with these labels (``first_alert``: its startsAt), within ``bounds``;
    ``policy``: how its subject is told from the exporter that measured it."""
    subject = subject_of(labels, policy)
    described = subject.describe()
    if subject.empty:
        text = "nothing to capture: the alert names no pod, workload, node, volume claim or HPA"
        return Captured(Outcome.NOTHING, text, {"subject": _subject(subject)})
    if kube.api is None:
        text = f"{described}: not captured: no Kubernetes credentials"
        return Captured(Outcome.NO_CREDENTIALS, text, {"subject": _subject(subject), "errors": [kube.why_dry]})
    found = _Gathered({"subject": _subject(subject)}, list(subject.refused))
    timed_out = False
    try:
        async with asyncio.timeout(bounds.deadline.total_seconds()):
            await _gather(kube.reader(bounds.request_timeout.total_seconds()), subject, found, bounds)
    except TimeoutError:
        timed_out = True
        found.errors.append(f"the capture took longer than {bounds.deadline}: what was read by then is kept")
    if found.errors:
        found.content["errors"] = found.errors
    content = await asyncio.to_thread(bounded, found.content, bounds)
    outcome = _outcome(found, timed_out)
    node = (content.get("node") or {}).get("name")
    if node and subject.node and node != subject.node:  # named by its address (node-exporter): say both
        described = described.replace(f"Node {subject.node}", f"Node {node} ({subject.node})")
    line = summary(described, content, first_alert)
    if outcome is not Outcome.CAPTURED:
        line += f" ({outcome.value}: {found.errors[-1] if found.errors else ''})"
    return Captured(outcome, line, content)


def _outcome(found: _Gathered, timed_out: bool) -> Outcome:
    if timed_out:
        return Outcome.TIMEOUT
    if not found.reads:
        return Outcome.FAILED
    return Outcome.PARTIAL if found.errors else Outcome.CAPTURED


def _subject(subject: Subject) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": subject.namespace,
        "pod": subject.pod,
        "container": subject.container,
        "workload": f"{subject.workload[0]}/{subject.workload[1]}" if subject.workload else None,
        "node": subject.node,
        "persistentVolumeClaim": subject.claim,
        "horizontalPodAutoscaler": subject.hpa,
    }
    return {k: v for k, v in out.items() if v is not None}


async def _read(found: _Gathered, fn: Callable[[], T]) -> T | None:
    """One blocking read on a worker thread; a failure is recorded and answered with None."""
    try:
        result = await asyncio.to_thread(fn)
    except ActionFailed as err:
        found.errors.append(err.reason)
        return None
    found.reads += 1
    return result


async def _gather(kube: Kube, subject: Subject, found: _Gathered, bounds: Bounds) -> None:
    ns = subject.namespace
    now = kube.now()
    involved: list[tuple[str, str]] = []
    if subject.claim and ns:
        claim = await _one(kube, found, Ref(CLAIM, ns, subject.claim), "volume", claim_view, involved)
        if claim is not None:
            await _storage_class(kube, found, claim)
    if subject.hpa and ns:
        await _one(kube, found, Ref(HPA, ns, subject.hpa), "hpa", hpa_view, involved)
    node = await _node_name(kube, found, subject.node) if subject.node else None
    if node:
        await _one(kube, found, Ref(NODE, None, node), "node", node_view, involved)
    workload = subject.workload
    if subject.pod and ns:
        pod = await _one(kube, found, Ref(POD, ns, subject.pod), "pod", pod_view, involved)
        if pod is not None:  # its logs and its owners at once
            _, top = await asyncio.gather(
                _logs(kube, found, ns, pod, subject.container, bounds), _owners(kube, found, ns, pod, involved)
            )
            workload = top or workload
    elif workload and ns and workload[0] in OWNERS:
        await _one(kube, found, Ref(OWNERS[workload[0]], ns, workload[1]), "workload", _meta, involved)
    where = "default" if subject.node and not ns else ns  # a node's events are in the default namespace
    await asyncio.gather(
        _rollouts(kube, found, ns, workload, bounds),
        _events(kube, found, where, involved, now - bounds.events_age, bounds),
    )


async def _node_name(kube: Kube, found: _Gathered, named: str) -> str | None:
    """The node an alert names: by name, or by one of its addresses (node-exporter's ``instance`` is the node's
    IP, and no node is called that: looked up among the nodes' addresses)."""
    try:
        ipaddress.ip_address(named)
    except ValueError:
        return named
    nodes = await _read(found, functools.partial(kube.objects, NODE, None, "nodes"))
    if nodes is None:
        return None
    name = node_by_address(named, nodes)
    if name is None:
        found.errors.append(f"no node has the address {named}")
    return name


async def _storage_class(kube: Kube, found: _Gathered, claim: Body) -> None:
    """Whether the claim's storage class lets it grow (what expanding it would need)."""
    name = (claim.get("spec") or {}).get("storageClassName")
    if name:
        storage_class = await _read(found, functools.partial(kube.get, Ref(STORAGE_CLASS, None, str(name))))
        if storage_class is not None:
            found.content["volume"]["allowVolumeExpansion"] = bool(storage_class.get("allowVolumeExpansion"))


async def _rollouts(
    kube: Kube, found: _Gathered, ns: str | None, workload: tuple[str, str] | None, bounds: Bounds
) -> None:
    """A Deployment's rollouts: its ReplicaSets' revisions."""
    if workload and workload[0] == "Deployment" and ns:
        about = f"ReplicaSets in {ns}"
        sets = await _read(found, functools.partial(kube.objects, OWNERS["ReplicaSet"], ns, about))
        if sets is not None:
            found.content["rollouts"] = rollouts(sets, workload[1], bounds)


async def _one(
    kube: Kube,
    found: _Gathered,
    ref: Ref,
    key: str,
    view: Callable[[Body], dict[str, Any]],
    involved: list[tuple[str, str]],
) -> Body | None:

    def read() -> tuple[Body, dict[str, Any]]:
        obj = kube.get(ref)
        return obj, view(obj)  # on the worker thread: a view redacts messages

    got = await _read(found, read)
    if got is None:
        return None
    obj, found.content[key] = got
    involved.append((ref.resource.kind, ref.name))
    return obj


def _meta(obj: Body) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    status = obj.get("status", {})
    return {
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "generation": meta.get("generation"),
        "replicas": obj.get("spec", {}).get("replicas"),
        "readyReplicas": status.get("readyReplicas"),
        "updatedReplicas": status.get("updatedReplicas"),
        "availableReplicas": status.get("availableReplicas"),
    }


async def _logs(kube: Kube, found: _Gathered, ns: str, pod: Body, container: str | None, bounds: Bounds) -> None:
    """The alert's own container's current log, and its previous one when it restarted."""
    names = [c.get("name") for c in pod.get("spec", {}).get("containers", [])]
    chosen = container if container in names else (names[0] if len(names) == 1 else None)
    if chosen is None:
        found.errors.append(f"no log read: the alert names no container of Pod/{ns}/{pod['metadata']['name']}")
        return
    statuses = {c.get("name"): c for c in pod.get("status", {}).get("containerStatuses") or []}
    restarted = bool((statuses.get(chosen) or {}).get("restartCount"))
    name = pod["metadata"]["name"]
    wanted = [("current", False), ("previous", True)] if restarted else [("current", False)]

    def read(previous: bool) -> dict[str, Any]:
        text = kube.log(ns, name, chosen, lines=bounds.log_lines, limit=bounds.log_bytes, previous=previous)
        return log_view(text, bounds)  # on the worker thread: redacting a log is CPU work

    views = await asyncio.gather(*(_read(found, functools.partial(read, previous)) for _, previous in wanted))
    logs: dict[str, Any] = {"container": chosen}
    for (which, _), view in zip(wanted, views, strict=True):
        if view is not None:
            logs[which] = view
    found.content["logs"] = logs


async def _owners(
    kube: Kube, found: _Gathered, ns: str, pod: Body, involved: list[tuple[str, str]]
) -> tuple[str, str] | None:
    """The pod's controllers up to the top one (ReplicaSet -> Deployment, Job -> CronJob...), as playbooks'
    ``owner_of`` walks them; the top one, or None (a bare pod)."""
    chain = await _read(found, functools.partial(walk, kube, Link("Pod", ns, pod["metadata"]["name"])))
    owners = [(link.kind, link.name) for link in (chain or [])[1:]]
    if owners:
        found.content["owners"] = [f"{kind}/{name}" for kind, name in owners]
        involved.extend(owners)
    return owners[-1] if owners else None


async def _events(
    kube: Kube,
    found: _Gathered,
    ns: str | None,
    involved: list[tuple[str, str]],
    since: datetime,
    bounds: Bounds,
) -> None:
    if not ns or not involved:
        return
    lists = await asyncio.gather(
        *(
            _read(
                found, functools.partial(kube.objects, EVENT, ns, f"events of {kind}/{name}", fields=_about(kind, name))
            )
            for kind, name in involved
        )
    )
    events = [e for listed in lists for e in listed or []]
    found.content["events"] = await asyncio.to_thread(event_views, events, set(involved), since, bounds)


def _about(kind: str, name: str) -> dict[str, str]:
    """The field selector of an object's events."""
    return {"involvedObject.kind": kind, "involvedObject.name": name}
