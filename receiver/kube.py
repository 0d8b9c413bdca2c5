"""The Kubernetes adapter: the one module that imports ``kubernetes``, and what each action does there.

Every action reads the object first, decides from what it read (pure
helpers below), writes only if something must change, and returns an
``Effect`` with the state before and after: repeating an action whose
effect is already there changes nothing. A relative change (scale by 2) is
made absolute from that first read, so a retried write cannot apply it twice.

The official client is synchronous: every call runs in a worker thread,
never on the event loop. Transient faults (429, 5xx, timeouts, refused
connections) are retried with exponential backoff (tenacity); a 409 (the
object changed between read and write) reads again and decides again; 403
and 404 fail the action with a reason a person can act on. Without
credentials (no in-cluster service account, no kubeconfig) there is no
client: every action is a dry-run and says why.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import tenacity
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
CONFLICT_ATTEMPTS = 3
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"


class ActionFailed(RuntimeError):
    """The action could not be done; ``reason`` says why, for the run's record."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TooOld(ActionFailed):
    """``rollout_undo`` with ``max_age``: the last rollout is older, so it is left alone (not a fault)."""


@dataclass(frozen=True, slots=True)
class Effect:
    """What an action found and left: ``before`` and ``after`` are the fields it looks at."""

    action: str
    target: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    dry_run: bool
    note: str = ""
    patch: Mapping[str, Any] | None = None
    """In a dry-run: what would have been sent."""

    @property
    def changed(self) -> bool:
        """Whether the action changed (or, in a dry-run, would change) anything."""
        return self.patch is not None or dict(self.before) != dict(self.after)


@dataclass(frozen=True, slots=True)
class _Change:
    """One action as its four parts: read the object, decide the patch, write it, view its state."""

    action: str
    target: str
    read: Callable[[], Any]
    decide: Callable[[Any], dict[str, Any] | None]
    write: Callable[[dict[str, Any]], Any]
    state: Callable[[Any], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Retry:
    """How transient faults are retried."""

    attempts: int = 5
    first_wait: float = 0.2
    longest_wait: float = 5.0
    timeout: tuple[float, float] = (3.0, 10.0)
    """(connect, read) seconds of each request."""


@dataclass
class Kube:
    """Actions on one cluster. ``api`` None: no credentials, every action a dry-run."""

    api: k8s.ApiClient | None
    dry_run: bool = False
    retry: Retry = field(default_factory=Retry)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @classmethod
    def from_environment(cls, *, dry_run: bool = False) -> Kube:
        """In-cluster service account, else the kubeconfig; else no client (dry-run, logged)."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            try:
                k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except (k8s_config.ConfigException, OSError) as err:
                log.warning("no Kubernetes credentials: every playbook action is a dry-run (%s)", err)
                return cls(None, dry_run=True)
        return cls(k8s.ApiClient(without_retries(configuration)), dry_run=dry_run)

    @property
    def why_dry(self) -> str:
        """Why actions are dry-runs ("" when they are not)."""
        if self.api is None:
            return "no Kubernetes credentials (no in-cluster service account, no kubeconfig)"
        return "dry_run is set" if self.dry_run else ""

    # The actions.

    async def scale(
        self, kind: str, namespace: str, name: str, *, replicas: int | None, by: int | None, low: int, high: int
    ) -> Effect:
        """Set replicas to ``replicas``, or current + ``by``, clamped to ``low``..``high``."""
        read, write = self._workload(kind, namespace, name)

        def decide(obj: Any) -> dict[str, Any] | None:
            want = scaled(obj.spec.replicas or 0, replicas, by, low, high)
            return None if want == obj.spec.replicas else {"spec": {"replicas": want}}

        return await self._change(_Change("scale", f"{kind}/{namespace}/{name}", read, decide, write, _replicas))

    async def rollout_restart(self, kind: str, namespace: str, name: str) -> Effect:
        """Restart the workload's pods: stamp its pod template, as ``kubectl rollout restart`` does."""
        read, write = self._workload(kind, namespace, name)
        stamp = self.clock().isoformat()

        def decide(obj: Any) -> dict[str, Any] | None:
            return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}

        return await self._change(
            _Change("rollout_restart", f"{kind}/{namespace}/{name}", read, decide, write, _restarted)
        )

    async def delete_pod(self, namespace: str, name: str) -> Effect:
        """Delete a pod (its controller starts another); a pod already gone is a failure, not a success."""
        core = self._core()

        def read() -> Any:
            return core.read_namespaced_pod(name, namespace, _request_timeout=self.retry.timeout)

        def decide(obj: Any) -> dict[str, Any] | None:
            return {"delete": True}

        def write(_: dict[str, Any]) -> Any:
            core.delete_namespaced_pod(name, namespace, _request_timeout=self.retry.timeout)
            return None

        return await self._change(_Change("delete_pod", f"Pod/{namespace}/{name}", read, decide, write, _pod_state))

    async def cordon(self, node: str, *, unschedulable: bool = True) -> Effect:
        """Mark a node unschedulable (or schedulable again)."""
        core = self._core()

        def read() -> Any:
            return core.read_node(node, _request_timeout=self.retry.timeout)

        def decide(obj: Any) -> dict[str, Any] | None:
            already = bool(obj.spec.unschedulable) if obj.spec else False
            return None if already == unschedulable else {"spec": {"unschedulable": unschedulable}}

        def write(body: dict[str, Any]) -> Any:
            return core.patch_node(node, body, _request_timeout=self.retry.timeout)

        action = "cordon" if unschedulable else "uncordon"
        return await self._change(_Change(action, f"Node/{node}", read, decide, write, _schedulable))

    async def set_env(
        self, kind: str, namespace: str, name: str, container: str | None, env: Mapping[str, str]
    ) -> Effect:
        """Set environment variables of one container (the first, if unnamed): a rolling update."""
        read, write = self._workload(kind, namespace, name)

        def decide(obj: Any) -> dict[str, Any] | None:
            containers = _plain(obj.spec.template.spec.containers)
            index = _container_index(containers, container, f"{kind}/{namespace}/{name}")
            merged = with_env(containers[index].get("env") or [], env)
            if merged == (containers[index].get("env") or []):
                return None
            containers[index]["env"] = merged  # the whole list: right under merge and strategic-merge patches
            return {"spec": {"template": {"spec": {"containers": containers}}}}

        def state(obj: Any) -> dict[str, Any]:
            containers = _plain(obj.spec.template.spec.containers)
            found = containers[_container_index(containers, container, f"{kind}/{namespace}/{name}")]
            return {"env": {e["name"]: e.get("value") for e in found.get("env") or [] if e["name"] in env}}

        return await self._change(_Change("set_env", f"{kind}/{namespace}/{name}", read, decide, write, state))

    async def annotate(
        self, kind: str, namespace: str, name: str, values: Mapping[str, str], *, labels: bool = False
    ) -> Effect:
        """Set annotations (or labels) on an object; those already set as asked are left alone."""
        read, write = self._object(kind, namespace, name)
        field = "labels" if labels else "annotations"

        def current(obj: Any) -> dict[str, str]:
            found: dict[str, str] = getattr(obj.metadata, field) or {}
            return {k: found[k] for k in values if k in found}

        def decide(obj: Any) -> dict[str, Any] | None:
            return None if current(obj) == dict(values) else {"metadata": {field: dict(values)}}

        action = "label" if labels else "annotate"
        return await self._change(
            _Change(action, f"{kind}/{namespace}/{name}", read, decide, write, lambda obj: {field: current(obj)})
        )

    async def rollout_undo(self, namespace: str, name: str, max_age: float | None = None) -> Effect:
        """Roll a Deployment back to its previous revision, found through its ReplicaSets' revision annotations.

        With ``max_age`` (seconds), only if its last rollout is younger: an old rollout is not the cause.
        """
        read, write = self._workload("Deployment", namespace, name)
        apps = k8s.AppsV1Api(self.api)
        target = f"Deployment/{namespace}/{name}"

        def decide(obj: Any) -> dict[str, Any] | None:
            timeout = self.retry.timeout
            listed: list[Any] = self._call(
                lambda: apps.list_namespaced_replica_set(namespace, _request_timeout=timeout), target
            ).items
            revisions: dict[int, Any] = {}
            for rs in listed:
                owners = rs.metadata.owner_references or []
                revision = _revision(rs)
                if revision is not None and any(o.kind == "Deployment" and o.name == name for o in owners):
                    revisions[revision] = rs
            current = _revision(obj)
            if current is None or current not in revisions:
                raise ActionFailed(f"{target}: its current revision has no ReplicaSet: nothing to roll back to")
            older = [r for r in revisions if r < current]
            if not older:
                raise ActionFailed(f"{target}: revision {current} is the first: nothing to roll back to")
            age = (self.clock() - revisions[current].metadata.creation_timestamp).total_seconds()
            if max_age is not None and age > max_age:
                raise TooOld(f"{target}: its last rollout is {age:.0f}s old, more than {max_age:.0f}s: not rolled back")
            template = _plain(revisions[max(older)].spec.template)
            template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
            return {"spec": {"template": template}}

        def state(obj: Any) -> dict[str, Any]:
            return {"revision": _revision(obj), "images": [c.image for c in obj.spec.template.spec.containers]}

        return await self._change(_Change("rollout_undo", target, read, decide, write, state))

    # The machinery.

    async def _change(self, change: _Change) -> Effect:
        if self.api is None:
            return Effect(change.action, change.target, {}, {}, dry_run=True, note=self.why_dry)
        return await asyncio.to_thread(self._change_now, change)

    def _change_now(self, change: _Change) -> Effect:
        """Read, decide, write (on a worker thread); a conflict reads and decides again."""
        action, target = change.action, change.target
        for _ in range(CONFLICT_ATTEMPTS):
            before_obj = self._call(change.read, target)
            before = change.state(before_obj)
            body = change.decide(before_obj)
            if body is None:
                return Effect(action, target, before, before, self.dry_run, "already so: nothing to change")
            if self.dry_run:
                return Effect(action, target, before, _predicted(before, body), True, self.why_dry, body)
            try:
                written = self._call(functools.partial(change.write, body), target)
            except ActionFailed as err:
                if err.status == 409:
                    continue
                raise
            return Effect(
                action, target, before, change.state(written) if written is not None else {"deleted": True}, False
            )
        raise ActionFailed(f"{target} kept changing while being written ({CONFLICT_ATTEMPTS} conflicts)", 409)

    def _call(self, fn: Callable[[], T], target: str) -> T:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.attempts),
            wait=tenacity.wait_exponential(multiplier=self.retry.first_wait, max=self.retry.longest_wait),
            retry=tenacity.retry_if_exception(_transient),
            reraise=True,
        )
        try:
            return retrying(fn)
        except ApiException as err:
            raise ActionFailed(_reason(err, target), err.status) from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ActionFailed(f"{target}: the API server could not be reached: {err}") from None

    def _object(self, kind: str, namespace: str, name: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
        """Read and patch any object annotate and label know about."""
        if kind in ("Pod", "Service"):
            core = k8s.CoreV1Api(self.api)
            suffix = kind.lower()
            read_fn, patch_fn = getattr(core, f"read_namespaced_{suffix}"), getattr(core, f"patch_namespaced_{suffix}")
            timeout = self.retry.timeout
            return (
                lambda: read_fn(name, namespace, _request_timeout=timeout),
                lambda body: patch_fn(name, namespace, body, _request_timeout=timeout),
            )
        return self._workload(kind, namespace, name)

    def _workload(self, kind: str, namespace: str, name: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
        """Read and patch a Deployment, StatefulSet or DaemonSet."""
        apps = k8s.AppsV1Api(self.api)
        suffix = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}[kind]
        read_fn, patch_fn = getattr(apps, f"read_namespaced_{suffix}"), getattr(apps, f"patch_namespaced_{suffix}")
        timeout = self.retry.timeout
        return (
            lambda: read_fn(name, namespace, _request_timeout=timeout),
            lambda body: patch_fn(name, namespace, body, _request_timeout=timeout),
        )

    def _core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)


def without_retries(configuration: k8s.Configuration) -> k8s.Configuration:
    """The client's configuration with urllib3's own retries off: tenacity owns retries here (urllib3 retried
    every read three more times, silently, so one timeout cost four requests and the backoff was not ours)."""
    configuration.retries = 0
    return configuration


# Pure decisions and views.


def scaled(current: int, replicas: int | None, by: int | None, low: int, high: int) -> int:
    """The replicas to set: ``replicas``, or ``current + by``, clamped to ``low``..``high``. Pure."""
    want = replicas if replicas is not None else current + (by or 0)
    return max(low, min(high, want))


def with_env(current: list[dict[str, Any]], wanted: Mapping[str, str]) -> list[dict[str, Any]]:
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


def _container_index(containers: list[dict[str, Any]], name: str | None, target: str) -> int:
    if not containers:
        raise ActionFailed(f"{target}: it has no containers")
    if name is None:
        return 0
    for i, c in enumerate(containers):
        if c.get("name") == name:
            return i
    raise ActionFailed(f"{target}: no container named {name!r} (it has {[c.get('name') for c in containers]})")


def _plain(obj: Any) -> Any:
    """A client model as plain JSON-ready data (camelCase keys), as the API server takes it."""
    return _SERIALIZER.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]


_SERIALIZER = k8s.ApiClient()


def _revision(obj: Any) -> int | None:
    text = (obj.metadata.annotations or {}).get(REVISION) if obj.metadata else None
    return int(text) if text and text.isdigit() else None


def _transient(err: BaseException) -> bool:
    if isinstance(err, ApiException):
        return err.status in RETRYABLE_STATUS
    return isinstance(err, urllib3.exceptions.HTTPError | TimeoutError | ConnectionError)


def _reason(err: ApiException, target: str) -> str:
    if err.status == 403:
        return f"{target}: forbidden (403): the receiver's service account may not do this; see its RBAC"
    if err.status == 404:
        return f"{target}: not found (404)"
    if err.status == 409:
        return f"{target}: conflict (409)"
    return f"{target}: the API server answered {err.status} {err.reason}"


def _replicas(obj: Any) -> dict[str, Any]:
    return {"replicas": obj.spec.replicas}


def _restarted(obj: Any) -> dict[str, Any]:
    annotations = (obj.spec.template.metadata.annotations or {}) if obj.spec.template.metadata else {}
    return {"restartedAt": annotations.get(RESTARTED_AT)}


def _pod_state(obj: Any) -> dict[str, Any]:
    return {"deleted": False, "phase": obj.status.phase if obj.status else None}


def _schedulable(obj: Any) -> dict[str, Any]:
    return {"unschedulable": bool(obj.spec.unschedulable) if obj.spec else False}


def _predicted(before: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """What a dry-run would have left: the fields ``body`` sets, over ``before``."""
    out = dict(before)
    spec = body.get("spec", {})
    if "replicas" in spec:
        out["replicas"] = spec["replicas"]
    if "unschedulable" in spec:
        out["unschedulable"] = spec["unschedulable"]
    if body.get("delete"):
        out["deleted"] = True
    annotations = spec.get("template", {}).get("metadata", {}).get("annotations", {})
    if RESTARTED_AT in annotations:
        out["restartedAt"] = annotations[RESTARTED_AT]
    return out
