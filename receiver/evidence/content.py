"""The snapshot an on-call person reads first, shaped from the API's objects: bounded, redacted, summed up. Pure.

``capture`` reads objects from the cluster; everything here turns them into
the evidence's content (plain JSON values) without touching anything: a
pod's phase and container states, the tail of a log, the events of the pod
and its owners, a Deployment's rollouts (its ReplicaSets' revisions and
images), a node's conditions, a claim's capacity, an HPA's replicas. Text
that may hold secrets (log lines, event and termination messages) goes
through ``redact``; logs are cut to their last lines and bytes, each line to a
few KB before it is redacted; the whole content is cut to a size, with a
marker. ``summary`` says it in one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from receiver.evidence.redact import redact, redact_line
from receiver.playbooks.actions.owners import Link, owner

Body = Mapping[str, Any]
TRUNCATED = "[truncated]"
REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True, slots=True)
class Bounds:
    """How much a capture may read and keep."""

    log_lines: int = 100
    """Last lines of each log (current and previous)."""
    log_bytes: int = 64 * 1024
    """Most bytes of each log."""
    total_bytes: int = 256 * 1024
    """Most bytes of the whole evidence, as JSON."""
    deadline: timedelta = timedelta(seconds=10)
    """A whole capture's time; what was read by then is kept."""
    request_timeout: timedelta = timedelta(seconds=3)
    """One request's time."""
    events_age: timedelta = timedelta(hours=1)
    """Events older than this are left out."""
    events: int = 20
    """Most events kept (the latest)."""
    rollouts: int = 5
    """Most rollouts (revisions) kept (the latest)."""


def time_of(text: Any) -> datetime | None:
    """An API timestamp (RFC 3339, ``Z``), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def pod_view(pod: Body) -> dict[str, Any]:
    """A pod's phase, node and each container's state: ready, restarts, waiting reason, last termination."""
    status = pod.get("status", {})
    images = {c.get("name"): c.get("image") for c in pod.get("spec", {}).get("containers", [])}
    return {
        "name": pod.get("metadata", {}).get("name"),
        "phase": status.get("phase"),
        "node": pod.get("spec", {}).get("nodeName"),
        "reason": status.get("reason"),
        "containers": [_container(c, images.get(c.get("name"))) for c in status.get("containerStatuses") or []],
    }


def _container(c: Body, image: Any) -> dict[str, Any]:
    state = c.get("state", {})
    last = (c.get("lastState") or {}).get("terminated") or {}
    now = next(iter(state), None)
    return {
        "name": c.get("name"),
        "image": c.get("image") or image,
        "ready": bool(c.get("ready")),
        "restartCount": int(c.get("restartCount") or 0),
        "state": now,
        "waitingReason": (state.get("waiting") or {}).get("reason"),
        "lastTerminationReason": last.get("reason"),
        "lastExitCode": last.get("exitCode"),
        "lastTerminationMessage": redact(str(last["message"]))[:1024] if last.get("message") else None,
        "lastFinishedAt": last.get("finishedAt"),
    }


def log_view(text: str, bounds: Bounds) -> dict[str, Any]:
    """The last lines of a log, redacted, at most ``log_lines`` and ``log_bytes`` (as kept); whether it was cut.

    Each line is cut to ``redact.LINE_LIMIT`` characters before it is redacted (``redact_line``), so the work is
    bounded per line as well as per log. CPU work: the capture calls it on a worker thread, not the event loop.
    """
    data = text.encode()
    cut = len(data) > 2 * bounds.log_bytes  # a server that ignored limitBytes: look at no more than twice it
    if cut:
        text = data[-2 * bounds.log_bytes :].decode(errors="ignore").partition("\n")[2]
    lines = text.splitlines()
    kept = [redact_line(line) for line in lines[-bounds.log_lines :]] if bounds.log_lines else []
    size = sum(len(line.encode()) + 1 for line in kept)
    first = 0
    while first < len(kept) and size > bounds.log_bytes:
        size -= len(kept[first].encode()) + 1
        first += 1
    return {"lines": kept[first:], "truncated": cut or len(kept) - first < len(lines)}


def event_views(events: Iterable[Body], objects: set[tuple[str, str]], since: datetime, bounds: Bounds) -> list[Any]:
    """Events about these (kind, name) objects since ``since``, oldest first, the latest ``bounds.events``.

    Each event once, however many lists returned it (a server that ignores field selectors returns them all).
    """
    found = []
    seen: set[tuple[Any, Any]] = set()
    for e in events:
        involved = e.get("involvedObject", {})
        meta = e.get("metadata", {})
        key = (meta.get("namespace"), meta.get("name") or id(e))
        if (involved.get("kind"), involved.get("name")) not in objects or key in seen:
            continue
        seen.add(key)
        at = _event_time(e)
        if at is None or at < since:
            continue
        found.append((at, e))
    found.sort(key=lambda pair: pair[0])
    return [_event(at, e) for at, e in found[-bounds.events :]]


def _event_time(e: Body) -> datetime | None:
    series = (e.get("series") or {}).get("lastObservedTime")
    return (
        time_of(series)
        or time_of(e.get("lastTimestamp"))
        or time_of(e.get("eventTime"))
        or time_of(e.get("firstTimestamp"))
    )


def _event(at: datetime, e: Body) -> dict[str, Any]:
    involved = e.get("involvedObject", {})
    return {
        "at": at.isoformat(),
        "object": f"{involved.get('kind')}/{involved.get('name')}",
        "type": e.get("type"),
        "reason": e.get("reason"),
        "message": redact(str(e.get("message") or ""))[:1024],
        "count": int(e.get("count") or (e.get("series") or {}).get("count") or 1),
    }


def rollouts(replicasets: Iterable[Body], deployment: str, bounds: Bounds) -> list[dict[str, Any]]:
    """A Deployment's rollouts: its ReplicaSets by revision, newest first (revision, images, created)."""
    found = []
    for rs in replicasets:
        meta = rs.get("metadata", {})
        up = owner(Link("ReplicaSet", str(meta.get("namespace", "")), str(meta.get("name", ""))), dict(rs))
        if up is None or (up.kind, up.name) != ("Deployment", deployment):
            continue
        revision = str((meta.get("annotations") or {}).get(REVISION, ""))
        if not revision.isdigit():
            continue
        containers = rs.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        found.append(
            {
                "revision": int(revision),
                "replicaSet": meta.get("name"),
                "images": [c.get("image") for c in containers],
                "createdAt": meta.get("creationTimestamp"),
                "replicas": int(rs.get("status", {}).get("replicas") or 0),
            }
        )
    found.sort(key=lambda r: r["revision"], reverse=True)
    return found[: bounds.rollouts]


def rollout_line(found: Sequence[Mapping[str, Any]], first_alert: datetime) -> str | None:
    """``image shop/web:1.4.2 -> shop/web:1.4.3 rolled out 4 minutes before the first alert``, or None."""
    if not found:
        return None
    latest = found[0]
    created = time_of(latest.get("createdAt"))
    images = ", ".join(str(i) for i in latest["images"])
    if len(found) > 1:
        images = f"{', '.join(str(i) for i in found[1]['images'])} -> {images}"
    what = f"image {images} rolled out" if len(found) > 1 else f"revision {latest['revision']} ({images}) created"
    if created is None:
        return what
    gap = first_alert - created
    return f"{what} {ago(abs(gap))} {'before' if gap >= timedelta(0) else 'after'} the first alert"


def ago(span: timedelta) -> str:
    """``4 minutes``, ``3 hours``, ``2 days``, ``40 seconds``."""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size * (2 if unit != "minute" else 1):
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def node_by_address(address: str, nodes: Sequence[Body]) -> str | None:
    """The name of the node one of whose ``status.addresses`` is ``address`` (node-exporter's alerts name a node
    by its IP: their ``instance``), or None. Pure."""
    for node in nodes:
        if any(a.get("address") == address for a in (node.get("status") or {}).get("addresses") or []):
            name = (node.get("metadata") or {}).get("name")
            return str(name) if name else None
    return None


def node_view(node: Body) -> dict[str, Any]:
    """A node's conditions, whether it is cordoned, its kubelet version."""
    status = node.get("status", {})
    return {
        "name": node.get("metadata", {}).get("name"),
        "unschedulable": bool(node.get("spec", {}).get("unschedulable")),
        "kubeletVersion": status.get("nodeInfo", {}).get("kubeletVersion"),
        "conditions": [
            {
                "type": c.get("type"),
                "status": c.get("status"),
                "reason": c.get("reason"),
                "message": redact(str(c.get("message") or ""))[:512],
                "lastTransitionTime": c.get("lastTransitionTime"),
            }
            for c in status.get("conditions") or []
        ],
    }


def claim_view(pvc: Body) -> dict[str, Any]:
    """A PersistentVolumeClaim's phase, capacity, request, storage class, volume."""
    spec, status = pvc.get("spec", {}), pvc.get("status", {})
    return {
        "name": pvc.get("metadata", {}).get("name"),
        "phase": status.get("phase"),
        "capacity": (status.get("capacity") or {}).get("storage"),
        "requested": ((spec.get("resources") or {}).get("requests") or {}).get("storage"),
        "storageClass": spec.get("storageClassName"),
        "volume": spec.get("volumeName"),
        "accessModes": list(spec.get("accessModes") or []),
    }


def hpa_view(hpa: Body) -> dict[str, Any]:
    """An HPA's current, desired, min and max replicas and what it scales."""
    spec, status = hpa.get("spec", {}), hpa.get("status", {})
    target = spec.get("scaleTargetRef") or {}
    return {
        "name": hpa.get("metadata", {}).get("name"),
        "currentReplicas": status.get("currentReplicas"),
        "desiredReplicas": status.get("desiredReplicas"),
        "minReplicas": spec.get("minReplicas", 1),
        "maxReplicas": spec.get("maxReplicas"),
        "target": f"{target.get('kind')}/{target.get('name')}" if target else None,
    }


def bounded(content: dict[str, Any], bounds: Bounds) -> dict[str, Any]:
    """The content within ``bounds.total_bytes`` as JSON: logs, then events, then everything cut, marked."""
    if _size(content) <= bounds.total_bytes:
        return content
    out = dict(content)
    out["truncated"] = True
    logs = {k: dict(v) for k, v in (out.get("logs") or {}).items() if isinstance(v, dict)}
    for which in ("previous", "current"):
        log = logs.get(which)
        while log and log["lines"] and _size(out | {"logs": logs}) > bounds.total_bytes:
            log["lines"] = log["lines"][len(log["lines"]) // 2 + 1 :] if len(log["lines"]) > 1 else []
            log["truncated"] = True
    out["logs"] = logs
    while out.get("events") and _size(out) > bounds.total_bytes:
        out["events"] = out["events"][len(out["events"]) // 2 + 1 :]
    if _size(out) > bounds.total_bytes:
        return {"truncated": True, "errors": [f"the evidence was larger than {bounds.total_bytes} bytes: {TRUNCATED}"]}
    return out


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


def summary(subject: str, content: Mapping[str, Any], first_alert: datetime) -> str:
    """The evidence in one line: the subject's state, then the rollout before the alert, if any."""
    parts = [subject]
    pod = content.get("pod")
    if pod:
        parts.append(_pod_line(pod))
    node = content.get("node")
    if node:
        ready = next((c for c in node["conditions"] if c["type"] == "Ready"), None)
        parts.append(f"Ready={ready['status']} ({ready['reason']})" if ready else "no Ready condition")
    claim = content.get("volume")
    if claim:
        grows = {True: ", which allows expansion", False: ", which does not allow expansion"}
        parts.append(
            f"{claim['phase']}, {claim['capacity']} of class {claim['storageClass']}"
            + grows.get(claim.get("allowVolumeExpansion"), "")
        )
    hpa = content.get("hpa")
    if hpa:
        parts.append(f"{hpa['currentReplicas']} replicas (desired {hpa['desiredReplicas']}, max {hpa['maxReplicas']})")
    line = rollout_line(content.get("rollouts") or [], first_alert)
    text = ": ".join(parts[:2]) + "".join(f"; {p}" for p in parts[2:])
    return text + (f"; {line}" if line else "")


def _pod_line(pod: Mapping[str, Any]) -> str:
    worst = max(pod["containers"], key=lambda c: c["restartCount"], default=None)
    if worst is None:
        return str(pod["phase"])
    state = worst["waitingReason"] or worst["state"] or pod["phase"]
    text = f"{state}, {worst['restartCount']} restarts"
    if worst["lastTerminationReason"] is not None:
        text += f", last exit {worst['lastExitCode']} ({worst['lastTerminationReason']})"
    return text
