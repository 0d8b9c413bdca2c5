"""The Kubernetes adapter: the one module that imports ``kubernetes``, and how a change reaches the API server.

Actions (``receiver/playbooks/actions/``) describe what they do as a
``Change`` over generic primitives (read, patch or delete an object, list a
resource); this module carries it out. Every change reads the object first,
lets the action decide from what it read, writes only if something must
change, and returns an ``Effect`` with the state before and after:
repeating an action whose effect is already there changes nothing. A
relative change (scale by 2) is made absolute from that first read, so a
retried write cannot apply it twice.

The official client is synchronous: every call runs in a worker thread,
never on the event loop. Transient faults (429, 5xx, timeouts, refused
connections) are retried with exponential backoff (tenacity); a 409 (the
object changed between read and write) reads again and decides again; 403
and 404 fail the action with a reason a person can act on. Without
credentials (no in-cluster service account, no kubeconfig) there is no
client: every action is a dry-run and says why. Objects travel as the API
server's JSON (plain dicts), addressed by ``Resource`` values the actions
own, so an action on a new kind of object needs no change here.
"""

from __future__ import annotations

import asyncio
import dataclasses
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

from receiver.cluster import ActionFailed, Body, Change, Effect, Ref, Resource, TooOld, Unread

__all__ = ["ActionFailed", "Effect", "Kube", "Retry", "TooOld", "without_retries"]
log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
CONFLICT_ATTEMPTS = 3
PATCH_TYPE = "application/strategic-merge-patch+json"
"""What the typed client sends for an object patch of a built-in API: lists merge by their keys (containers by
name)."""
JSON_PATCH_TYPE = "application/json-patch+json"
"""A list of operations (RFC 6902): ``replace`` sets a field whole, as ``kubectl rollout undo`` sets a template."""


@dataclass(frozen=True, slots=True)
class Retry:
    """How transient faults are retried."""

    attempts: int = 5
    first_wait: float = 0.2
    longest_wait: float = 5.0
    timeout: tuple[float, float] = (3.0, 10.0)
    """(connect, read) seconds of each request."""


def _utc_now() -> datetime:
    """The real clock, the adapter's unless it is given the engine's (``receiver.clock`` is a layer apart)."""
    return datetime.now(UTC)


@dataclass
class Kube:
    """One cluster. ``api`` None: no credentials, every action a dry-run."""

    api: k8s.ApiClient | None
    dry_run: bool = False
    retry: Retry = field(default_factory=Retry)
    clock: Callable[[], datetime] = _utc_now

    @classmethod
    def from_environment(cls, *, clock: Callable[[], datetime] = _utc_now, dry_run: bool = False) -> Kube:
        """In-cluster service account, else the kubeconfig; else no client (dry-run, logged).

        ``clock``: the engine's (the age of a revision, the time stamped on a restart); the real one by default.
        """
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            try:
                k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except (k8s_config.ConfigException, OSError) as err:
                log.warning("no Kubernetes credentials: every playbook action is a dry-run (%s)", err)
                return cls(None, dry_run=True, clock=clock)
        return cls(k8s.ApiClient(without_retries(configuration)), dry_run=dry_run, clock=clock)

    @property
    def why_dry(self) -> str:
        """Why actions are dry-runs ("" when they are not)."""
        if self.api is None:
            return "no Kubernetes credentials (no in-cluster service account, no kubeconfig)"
        return "dry_run is set" if self.dry_run else ""

    def now(self) -> datetime:
        """The adapter's clock."""
        return self.clock()

    async def change(self, change: Change) -> Effect:
        """Carry one action's change out on a worker thread (without a client: a dry-run that says why)."""
        if self.api is None:
            return Effect(change.action, change.target, {}, {}, dry_run=True, note=self.why_dry)
        return await asyncio.to_thread(self._change_now, change)

    async def read(self, reads: Callable[[], T]) -> T:
        """Run blocking reads on a worker thread (resolving a workload's owner); Unread without a client."""
        if self.api is None:
            raise Unread(self.why_dry)
        return await asyncio.to_thread(reads)

    # The primitives, blocking and retried: actions call them from a Change's read, decide and write.

    def get(self, ref: Ref) -> Body:
        """Read one object."""
        return self._object("GET", _path(ref), str(ref))

    def patch(self, ref: Ref, body: Body) -> Body:
        """Patch one object (strategic merge patch, as the typed client sends one)."""
        return self._object("PATCH", _path(ref), str(ref), body)

    def replace(self, ref: Ref, path: str, value: Any) -> Body:
        """Replace one field whole (a JSON patch): nothing of the old value is merged in."""
        operations = [{"op": "replace", "path": path, "value": value}]
        call = functools.partial(self._request, "PATCH", _path(ref), operations, content_type=JSON_PATCH_TYPE)
        return self._call(call, str(ref))

    def delete(self, ref: Ref) -> None:
        """Delete one object."""
        self._object("DELETE", _path(ref), str(ref))

    def objects(
        self,
        resource: Resource,
        namespace: str | None,
        about: str,
        *,
        fields: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[Body]:
        """Every object of ``resource`` in ``namespace`` (``fields``: a fieldSelector, ``labels``: a labelSelector,
        each ``k=v`` ANDed); a failure names ``about``."""
        query = [
            (name, ",".join(f"{k}={v}" for k, v in selector.items()))
            for name, selector in (("fieldSelector", fields), ("labelSelector", labels))
            if selector
        ]
        path = _collection(resource, namespace)
        found = self._call(functools.partial(self._request, "GET", path, None, query), about)
        items: list[Body] = found.get("items") or []
        return items

    def log(self, namespace: str, pod: str, container: str | None, *, lines: int, limit: int, previous: bool) -> str:
        """A container's log as text: its last ``lines`` lines, at most ``limit`` bytes (the previous instance's)."""
        query = [("tailLines", str(lines)), ("limitBytes", str(limit))]
        query += [("container", container)] if container else []
        query += [("previous", "true")] if previous else []
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        about = f"log of Pod/{namespace}/{pod}" + (f" container {container}" if container else "")
        return self._call(functools.partial(self._text, path, query), about + (" (previous)" if previous else ""))

    def reader(self, timeout: float) -> Kube:
        """This adapter for reads a person waits on: each request ``timeout`` seconds at most, retried once."""
        retry = Retry(attempts=2, first_wait=0.05, longest_wait=0.2, timeout=(min(timeout, 3.0), timeout))
        return dataclasses.replace(self, retry=retry)

    # The machinery.

    def _change_now(self, change: Change) -> Effect:
        """Read, decide, write (on a worker thread); a conflict reads and decides again."""
        action, target = change.action, change.target
        for _ in range(CONFLICT_ATTEMPTS):
            before_obj = change.read()
            before = change.state(before_obj)
            body = change.decide(before_obj)
            if body is None:
                return Effect(action, target, before, before, self.dry_run, "already so: nothing to change")
            if self.dry_run:
                return Effect(action, target, before, change.predict(before, body), True, self.why_dry, body)
            try:
                written = change.write(body)
            except ActionFailed as err:
                if err.status == 409:
                    continue
                raise
            return Effect(action, target, before, change.state(written), False)
        raise ActionFailed(f"{target} kept changing while being written ({CONFLICT_ATTEMPTS} conflicts)", 409)

    def _object(self, method: str, path: str, target: str, body: Body | None = None) -> Body:
        return self._call(functools.partial(self._request, method, path, body), target)

    def _request(
        self,
        method: str,
        path: str,
        body: Body | list[Body] | None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = PATCH_TYPE,
    ) -> Body:
        """One HTTP request to the API server; an answer other than 2xx raises ApiException."""
        assert self.api is not None
        headers = {"Accept": "application/json"} | ({"Content-Type": content_type} if method == "PATCH" else {})
        auth = ["BearerToken"]
        request = self.api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=auth
        )
        response = self.api.call_api(*request, _request_timeout=self.retry.timeout)
        response.read()  # type: ignore[no-untyped-call]
        found: Any = self.api.response_deserialize(response, {"2XX": "object"}).data
        return found if isinstance(found, dict) else {}

    def _text(self, path: str, query: list[tuple[str, str]]) -> str:
        """One GET whose answer is text (a log); an answer other than 2xx raises ApiException."""
        assert self.api is not None
        headers = {"Accept": "text/plain"}
        auth = ["BearerToken"]
        request = self.api.param_serialize("GET", path, query_params=query, header_params=headers, auth_settings=auth)
        response = self.api.call_api(*request, _request_timeout=self.retry.timeout)
        response.read()  # type: ignore[no-untyped-call]
        data: Any = self.api.response_deserialize(response, {"2XX": "bytearray"}).data
        return bytes(data or b"").decode(errors="replace")

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


def without_retries(configuration: k8s.Configuration) -> k8s.Configuration:
    """The client's configuration with urllib3's own retries off: tenacity owns retries here (urllib3 retried
    every read three more times, silently, so one timeout cost four requests and the backoff was not ours)."""
    configuration.retries = 0
    return configuration


def _collection(resource: Resource, namespace: str | None) -> str:
    root = f"/apis/{resource.group}/{resource.version}" if resource.group else f"/api/{resource.version}"
    return f"{root}/namespaces/{namespace}/{resource.plural}" if namespace is not None else f"{root}/{resource.plural}"


def _path(ref: Ref) -> str:
    return f"{_collection(ref.resource, ref.namespace)}/{ref.name}"


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
