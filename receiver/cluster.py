"""What playbook actions and the Kubernetes adapter say to each other: no client here, only the vocabulary.

An action (``receiver/playbooks/actions/``) describes a change to one object
as a ``Change``: how to read it, what to patch given what was read, how to
write the patch, which fields to show before and after. The adapter
(``receiver/kube.py``, the one module that imports ``kubernetes``) carries it
out (worker threads, retries, conflicts, dry-runs) and answers with an
``Effect``. Actions name API resources with ``Resource`` and ``Ref`` values,
so a new kind of object needs no change to the adapter. Keeping this
vocabulary apart from the client lets the pure decisions (the model, the
plan, the guardrails) import the actions without loading the client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Body = dict[str, Any]
"""A Kubernetes object or a patch, as the API server's JSON (camelCase keys)."""


class ActionFailed(RuntimeError):
    """The action could not be done; ``reason`` says why, for the run's record (``resolved``: the owner chain
    followed before it failed, as ``Effect.resolved`` records it when it succeeds)."""

    def __init__(self, reason: str, status: int | None = None, resolved: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.resolved = resolved


class LeftAlone(ActionFailed):
    """The action leaves its target alone and says why: not a fault, the step is skipped (its run goes on)."""


class TooOld(LeftAlone):
    """``rollout_undo`` with ``max_age``: the last rollout is older, so it is left alone (not a fault)."""


class Unread(ActionFailed):
    """There is no client to read with (no credentials): every action is a dry-run, ``reason`` says why."""


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind of object of the API: where it lives (group, version, plural) and whether it is namespaced."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``apps/v1``, or ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True, slots=True)
class Ref:
    """One object: its resource, namespace (None if cluster-scoped) and name."""

    resource: Resource
    namespace: str | None
    name: str

    def __str__(self) -> str:
        """``Kind/namespace/name``, or ``Kind/name`` for a cluster-scoped object: how records name it."""
        if self.namespace is None:
            return f"{self.resource.kind}/{self.name}"
        return f"{self.resource.kind}/{self.namespace}/{self.name}"


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
    resolved: tuple[str, ...] = ()
    """For a target named by what it owns (``owner_of``): the objects followed, from the one named to ``target``,
    each as ``Kind/namespace/name``."""

    @property
    def changed(self) -> bool:
        """Whether the action changed (or, in a dry-run, would change) anything."""
        return self.patch is not None or dict(self.before) != dict(self.after)


def unchanged(before: Mapping[str, Any], body: Body) -> dict[str, Any]:
    """The default prediction of a dry-run: nothing the action shows would change."""
    return dict(before)


@dataclass(frozen=True, slots=True)
class Change:
    """One action on one object: read it, decide the patch (None: nothing to do), write it, view its state.

    ``read``, ``decide`` and ``write`` run on a worker thread and may call the
    cluster's blocking primitives (``get``, ``patch``, ``delete``, ``objects``);
    ``state`` views an object (None: the write deleted it); ``predict`` says
    what a dry-run would have left, from the state before and the patch.
    """

    action: str
    target: str
    read: Callable[[], Body]
    decide: Callable[[Body], Body | None]
    write: Callable[[Body], Body | None]
    state: Callable[[Body | None], dict[str, Any]]
    predict: Callable[[Mapping[str, Any], Body], dict[str, Any]] = unchanged


class Cluster(Protocol):
    """What actions may ask of the cluster (``receiver.kube.Kube`` is the real one)."""

    def now(self) -> datetime:
        """The time, as the adapter's clock tells it (stamps, ages)."""
        ...

    async def change(self, change: Change) -> Effect:
        """Carry ``change`` out: read, decide, write (unless a dry-run), retrying what is transient."""
        ...

    async def read(self, reads: Callable[[], T]) -> T:
        """Run ``reads`` (blocking calls of ``get`` and ``objects``) on a worker thread; Unread without a client."""
        ...

    def get(self, ref: Ref) -> Body:
        """Read one object (blocking, retried): for ``Change.read``."""
        ...

    def patch(self, ref: Ref, body: Body) -> Body:
        """Patch one object (strategic merge; blocking, retried): for ``Change.write``."""
        ...

    def replace(self, ref: Ref, path: str, value: Any) -> Body:
        """Replace one field of an object whole (a JSON patch ``replace`` at ``path``, such as ``/spec/template``:
        no merging of lists or maps; blocking, retried): for ``Change.write``."""
        ...

    def delete(self, ref: Ref) -> None:
        """Delete one object (blocking, retried): for ``Change.write``."""
        ...

    def objects(
        self, resource: Resource, namespace: str | None, about: str, *, labels: Mapping[str, str] | None = None
    ) -> list[Body]:
        """Every object of ``resource`` in ``namespace`` (``labels``: only those with these labels; blocking,
        retried); failures name ``about``."""
        ...
