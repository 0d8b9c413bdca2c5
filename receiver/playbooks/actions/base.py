"""What a playbook action is: the one shape every module of this package fills in, and the parts they share.

An ``Action`` holds all there is to know about one action: its step's typed
model (which the JSON Schema is built from), how it plans (renders and
checks its inputs), what it needs from the Kubernetes API per target kind
(its RBAC rules), how it executes, and what it counts toward the blast
radius. The registry (``actions/__init__.py``) lists them; the model, the
plan, the executor, the guardrails, the permissions, the chart's RBAC table
and the metrics all read them from there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import pydantic

from receiver.cluster import Body, Change, Cluster, Effect, Ref, Resource, unchanged
from receiver.durations import Duration
from receiver.playbooks.templating import (
    TemplateError,
    UnsafeValue,
    check_expression,
    check_template,
    dns1123_label,
    dns1123_subdomain,
    render,
)
from receiver.timer import REAL, Timer

Name = Annotated[str, pydantic.Field(min_length=1, max_length=253)]
Inputs = Mapping[str, Any]
"""A planned step's rendered and checked inputs (``PlannedStep.inputs``)."""


def _checked(check: Callable[[str], None]) -> Callable[[str], str]:
    """A validator that parses a template or condition at load time, so a broken one rejects its file."""

    def validate(text: str) -> str:
        try:
            check(text)
        except TemplateError as err:
            raise ValueError(str(err)) from None
        return text

    return validate


Template = Annotated[str, pydantic.Field(min_length=1), pydantic.AfterValidator(_checked(check_template))]
"""Text rendered with the alert, the incident and earlier steps: ``{{ alert.labels.pod }}``."""
Expression = Annotated[str, pydantic.Field(min_length=1), pydantic.AfterValidator(_checked(check_expression))]
"""A condition over the same values: ``alert.status == "firing" and steps.restart.ok``."""


class Model(pydantic.BaseModel):
    """Strict and frozen: an unknown key rejects the file."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


DEFAULT_TIMEOUT = timedelta(minutes=1)
"""A step's time limit when it names none and its action needs no longer."""
MARGIN = timedelta(seconds=10)
"""What a step's default time limit adds to the time its action needs at least (a ``wait``'s duration)."""


class StepBase(Model):
    """What every step has: a name, an optional condition and a time limit.

    A step whose limit is shorter than the time its action needs at least (``least_time``) could never
    finish: its file is rejected. Without a ``timeout``, the limit is ``DEFAULT_TIMEOUT``, or the time the
    action needs plus ``MARGIN`` when that is longer (a ``wait: 5m`` gets 5m10s).
    """

    name: Name
    when: Expression | None = None
    """Run the step only if this holds (over the alert, the incident and earlier steps)."""
    timeout: Duration = DEFAULT_TIMEOUT
    """How long the step may take (default: 1m, or the action's least time plus 10s when that is longer)."""
    action: str

    @classmethod
    def least_time_of(cls, raw: Mapping[str, Any]) -> timedelta | None:
        """The least time a step written as ``raw`` needs (None: none, or ``raw`` is invalid anyway)."""
        return None

    def least_time(self) -> timedelta:
        """The least time this step needs to finish when all goes well (a ``wait``: its duration)."""
        return timedelta(0)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _default_timeout(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping) or "timeout" in raw:
            return raw
        least = cls.least_time_of(raw)
        if least is None or least + MARGIN <= DEFAULT_TIMEOUT:
            return raw
        return {**raw, "timeout": (least + MARGIN).total_seconds()}

    @pydantic.model_validator(mode="after")
    def _can_finish(self) -> StepBase:
        least = self.least_time()
        if least and self.timeout <= least:
            raise ValueError(
                f"step {self.name!r}: its timeout ({_seconds(self.timeout)}) is not longer than the"
                f" {_seconds(least)} it needs: it could never finish (without a timeout it gets"
                f" {_seconds(least + MARGIN)})"
            )
        return self


def _seconds(duration: timedelta) -> str:
    return f"{duration.total_seconds():g}s"


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    """Where playbooks may act: ``allow`` (empty: everywhere) minus ``deny``."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ("kube-system",)

    def check(self, namespace: str) -> str:
        """``namespace`` if playbooks may act there; UnsafeValue saying why not."""
        if namespace in self.deny:
            raise UnsafeValue(f"namespace {namespace!r} is denied (remediation.namespaces.deny)")
        if self.allow and namespace not in self.allow:
            raise UnsafeValue(f"namespace {namespace!r} is not allowed (remediation.namespaces.allow)")
        return namespace


@dataclass(frozen=True, slots=True)
class Render:
    """What planning a step sees: the values templates render with, and where playbooks may act."""

    values: Mapping[str, Any]
    namespaces: NamespacePolicy

    def text(self, template: str) -> str:
        """``template`` rendered (TemplateError if it cannot be)."""
        return render(template, self.values)

    def target(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """A namespaced target rendered and checked: ``{kind, namespace, name}``."""
        rendered = self.namespaces.check(dns1123_label(self.text(namespace), "namespace"))
        return {"kind": kind, "namespace": rendered, "name": dns1123_subdomain(self.text(name), "name")}


@dataclass(frozen=True, order=True, slots=True)
class Permission:
    """One verb on one resource of one API group."""

    group: str
    resource: str
    verb: str


@dataclass(frozen=True, slots=True)
class Grant:
    """Verbs an action uses on one resource."""

    resource: Resource
    verbs: tuple[str, ...]

    def permissions(self) -> frozenset[Permission]:
        """As permissions."""
        return frozenset(Permission(self.resource.group, self.resource.plural, v) for v in self.verbs)


class Outcome(StrEnum):
    """How a step ended. Bounded: safe as a metric label."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Its condition did not hold, or there was nothing to do (a rollout too old to undo)."""
    TIMED_OUT = "timed_out"
    RESOLVED = "resolved"
    """``wait_for_resolution``: the alert resolved; the run ends as a success."""


Tell = Callable[[str, str], Awaitable[int]]
"""(channel, message): written to the outbox of the run's incident (``default``: every channel it has); how many
notifications that made (0: no such channel, or none of the incident's takes a playbook's messages)."""


@dataclass(frozen=True, slots=True)
class Context:
    """What executing a step may use: the cluster, whether the alert still fires, and the executor's timer."""

    cluster: Cluster
    still_firing: Callable[[], Awaitable[bool]]
    poll_seconds: float
    timer: Timer = REAL
    """Sleep through it, never ``asyncio.sleep``: tests run real durations in virtual time."""
    tell: Tell | None = None
    """Sends a message to a notification channel of the run's incident (None: notifications are not set up)."""


@dataclass(frozen=True, slots=True)
class Done:
    """How an action's execution ended (the executor adds the step's name, inputs and time)."""

    outcome: Outcome
    effect: Effect | None = None
    reason: str = ""
    resolved: tuple[str, ...] = ()
    """The owner chain followed (an ``owner_of`` target) when there is no effect to carry it."""


@dataclass(frozen=True, slots=True)
class Blast:
    """What one planned step counts toward the blast radius."""

    pods_deleted: int = 0
    replicas: int = 0
    """The most replicas it may set (checked against ``max_replicas``)."""


def no_blast(inputs: Inputs) -> Blast:
    """Counts nothing."""
    return Blast()


Execute = Callable[[Context, Inputs], Awaitable[Done]]


@dataclass(frozen=True, slots=True)
class Action:
    """One playbook action, whole: registered once in ``actions/__init__.py``."""

    name: str
    step: type[StepBase]
    """Its step's typed model: the JSON Schema's branch for ``action: <name>``."""
    plan: Callable[[Any, Render], dict[str, Any]]
    """Its step's inputs, rendered and checked (TemplateError or UnsafeValue refuses the step). Pure."""
    execute: Execute
    grants: Mapping[str, tuple[Grant, ...]] = field(default_factory=dict)
    """What it needs from the API, by its target's kind (empty: it does not touch the API)."""
    default_kind: str | None = None
    """The target's kind when the step names none."""
    blast: Callable[[Inputs], Blast] = no_blast
    ends_at_timeout: bool = False
    """Reaching the step's time limit is its normal end, not a fault (``wait_for_resolution``)."""
    example: Mapping[str, Any] = field(default_factory=dict)
    """A step of this action without its name, as a playbook writes it: tests run every action through the
    schema, the plan, ``receiver playbooks rbac`` and the chart with it."""

    @property
    def kubernetes(self) -> bool:
        """Whether it acts on the cluster (its steps count in ``receiver_playbook_actions``)."""
        return bool(self.grants)

    def needs(self, kind: str | None = None) -> frozenset[Permission]:
        """The permissions one step needs on its target's kind (None: the default kind)."""
        if not self.grants:
            return frozenset()
        chosen = kind or self.default_kind
        if chosen is None or chosen not in self.grants:
            raise ValueError(f"{self.name} cannot act on {chosen}")
        return frozenset().union(*(g.permissions() for g in self.grants[chosen]))


def on_cluster(run: Callable[[Cluster, Inputs], Awaitable[Effect]]) -> Execute:
    """The execution of an action that changes one object: it succeeds with its effect, or raises."""

    async def execute(context: Context, inputs: Inputs) -> Done:
        effect = await run(context.cluster, inputs)
        return Done(Outcome.SUCCEEDED, effect, effect.note)

    return execute


async def patch_one(
    cluster: Cluster,
    action: str,
    target: Ref,
    decide: Callable[[Body], Body | None],
    state: Callable[[Body | None], dict[str, Any]],
    predict: Callable[[Mapping[str, Any], Body], dict[str, Any]] = unchanged,
) -> Effect:
    """The usual change: read ``target``, patch it with what ``decide`` returns (if anything)."""
    return await cluster.change(
        Change(
            action, str(target), lambda: cluster.get(target), decide, lambda b: cluster.patch(target, b), state, predict
        )
    )
