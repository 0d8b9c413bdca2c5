"""Running a planned playbook: its steps in order, their conditions, time limits and results.

The executor takes a ``Plan`` (rendered and checked: nothing of the alert's
labels is interpreted here), a ``Kube`` and a way to ask whether the alert
still fires, and runs the steps one after another, each by its action
(``receiver/playbooks/actions/``). A step's ``when`` is
evaluated just before it, over the alert as it is now, the incident, and
the results of the steps before it (``steps.<name>.outcome``). Each step has
a time limit. The first failing step ends the run as failed; a
``wait_for_resolution`` that sees the alert resolve ends it as a success
(and one that times out lets the next steps decide, e.g. with ``when:
alert.status == "firing"``).
The owners that ``owner_of`` targets name are read once, when the run starts
(``actions/owners.py``: a step that deletes the pod may come first).
Every step reports to ``on_step`` as soon as it ends, so the run's record in
the store is current even if the process dies in the middle.

A deferred step (planned without inputs: see ``plan``) whose condition holds
is rendered then, with the values of that moment; one that still cannot be
rendered fails with the reason. Its rendered inputs go to ``on_render``
first, which may refuse them (the runner re-applies the guardrails to the
objects they name) and records them in the run's plan.
Time (step limits, durations, waits) is the ``Timer``'s
(``receiver/timer.py``): real by default, virtual in tests.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from receiver.cluster import ActionFailed, Cluster, Effect, LeftAlone
from receiver.playbooks import actions
from receiver.playbooks.actions import owners
from receiver.playbooks.actions.base import Context, Outcome, Tell
from receiver.playbooks.plan import NamespacePolicy, Plan, PlannedStep, render_deferred
from receiver.playbooks.templating import TemplateError, holds
from receiver.timer import REAL, Timer

__all__ = ["Outcome", "RunOutcome", "RunResult", "StepResult", "execute"]
log = logging.getLogger(__name__)
POLL_SECONDS = 5.0
"""How often ``wait_for_resolution`` asks whether the alert still fires."""


class RunOutcome(StrEnum):
    """How a run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step's end: its outcome, what it did, why, and how long it took."""

    name: str
    action: str
    outcome: Outcome
    inputs: Mapping[str, Any]
    effect: Effect | None = None
    reason: str = ""
    seconds: float = 0.0
    resolved: tuple[str, ...] = ()
    """The owner chain its ``owner_of`` target was found through (also when it failed or was left alone)."""

    def values(self) -> dict[str, Any]:
        """What later steps' conditions see of it: ``steps.<name>.outcome``, ``.changed``, ``.reason``."""
        return {
            "outcome": self.outcome.value,
            "changed": bool(self.effect and self.effect.changed),
            "dry_run": bool(self.effect and self.effect.dry_run),
            "reason": self.reason,
        }


@dataclass
class RunResult:
    """A run's end and every step's result, in order."""

    outcome: RunOutcome
    steps: list[StepResult] = field(default_factory=list)
    reason: str = ""


StillFiring = Callable[[], Awaitable[bool]]
"""Asked before conditions and while waiting: does the alert still fire?"""
OnStep = Callable[[StepResult], Awaitable[None]]
OnRender = Callable[[Plan, PlannedStep], Awaitable[str | None]]
"""Told a deferred step just rendered, and the run's plan with it: why it may not run, or None (go on)."""


@dataclass(frozen=True, slots=True)
class _Run:
    """What every step of one run shares."""

    kube: Cluster
    still_firing: StillFiring
    poll_seconds: float
    timer: Timer
    namespaces: NamespacePolicy
    on_render: OnRender | None
    tell: Tell | None = None
    chains: Mapping[str, list[owners.Link]] = field(default_factory=dict)
    """The owners ``owner_of`` targets name, read when the run starts (``owners.ahead``)."""


async def execute(
    plan: Plan,
    kube: Cluster,
    *,
    still_firing: StillFiring,
    alert: Mapping[str, Any],
    incident: Mapping[str, Any] | None = None,
    on_step: OnStep | None = None,
    poll_seconds: float = POLL_SECONDS,
    timer: Timer = REAL,
    namespaces: NamespacePolicy | None = None,
    on_render: OnRender | None = None,
    tell: Tell | None = None,
) -> RunResult:
    """Run ``plan`` to its end. A refused plan runs nothing.

    ``namespaces``: where a deferred step may act once rendered (default: the plan's default policy).
    ``tell``: how a ``notify`` step writes its message to the outbox (None: notifications are off).
    """
    if plan.refused:
        return RunResult(RunOutcome.REFUSED, reason=plan.refused)
    run = _Run(kube, still_firing, poll_seconds, timer, namespaces or NamespacePolicy(), on_render, tell)
    async with timer.hold():  # a virtual timer's time waits for the run, but while it waits
        return await _steps(plan, run, alert, incident, on_step)


async def _steps(
    plan: Plan, run: _Run, alert: Mapping[str, Any], incident: Mapping[str, Any] | None, on_step: OnStep | None
) -> RunResult:
    result = RunResult(RunOutcome.SUCCEEDED)
    chains = await owners.ahead(run.kube, [s.inputs for s in plan.steps])  # before a step deletes where they start
    run = dataclasses.replace(run, chains=chains)
    current = plan
    for planned in plan.steps:
        step = dataclasses.replace(planned, inputs=owners.with_chain(planned.inputs, chains))
        firing = await run.still_firing()
        values = {
            "alert": {**alert, "status": "firing" if firing else "resolved"},
            "incident": dict(incident or {}),
            "steps": {r.name: r.values() for r in result.steps},
        }
        done, current = await _one(step, current, values, run)
        result.steps.append(done)
        if on_step is not None:
            await on_step(done)
        if done.outcome is Outcome.RESOLVED:
            break
        if done.outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
            result.outcome, result.reason = RunOutcome.FAILED, f"step {done.name!r}: {done.reason}"
            break
    return result


async def _one(step: PlannedStep, plan: Plan, values: Mapping[str, Any], run: _Run) -> tuple[StepResult, Plan]:
    """The step's result, and the run's plan (with the step's inputs if it was deferred and got rendered)."""
    started = run.timer.monotonic()

    def ended(
        outcome: Outcome, effect: Effect | None = None, reason: str = "", resolved: tuple[str, ...] = ()
    ) -> StepResult:
        seconds = run.timer.monotonic() - started
        found = resolved or (effect.resolved if effect is not None else ())
        return StepResult(step.name, step.action, outcome, step.inputs, effect, reason, seconds, found)

    if step.when is not None:
        try:
            if not holds(step.when, values):
                return ended(Outcome.SKIPPED, reason=f"condition does not hold: {step.when}"), plan
        except TemplateError as err:
            return ended(Outcome.FAILED, reason=str(err)), plan
    if step.pending:
        step = render_deferred(step, values, run.namespaces)
        if step.refused:
            return ended(Outcome.FAILED, reason=f"deferred step cannot be rendered: {step.refused}"), plan
        plan = plan.with_step(step)
        why = await run.on_render(plan, step) if run.on_render is not None else None
        if why is not None:
            return ended(Outcome.FAILED, reason=why), plan
        step = dataclasses.replace(step, inputs=owners.with_chain(step.inputs, run.chains))
    elif run.on_render is not None and (aimed := owners.aimed(step.inputs)) is not None:
        # An owner found at run time is judged like a deferred step's target (another run busy with that
        # Deployment, one that acted on it within the cooldown) and recorded as the step's target: left alone if
        # refused, not failed (N replicas of one crash-looping rollout are N runs; the first acts, the others must
        # not count toward the playbook's circuit breaker).
        recorded = dataclasses.replace(step, inputs={k: v for k, v in aimed.items() if k != "owner_chain"})
        plan = plan.with_step(recorded)
        why = await run.on_render(plan, recorded)
        if why is not None:
            return ended(Outcome.SKIPPED, reason=f"its owner is left alone: {why}"), plan
        step = dataclasses.replace(step, inputs=aimed)
    return await _limited(step, run, ended), plan


async def _limited(step: PlannedStep, run: _Run, ended: Callable[..., StepResult]) -> StepResult:
    limit = float(step.inputs.get("timeout_seconds", 60.0))
    try:
        async with run.timer.limit(limit):
            return await _act(step, run, ended)
    except TimeoutError:
        if _ends_at_timeout(step.action):  # not a fault: the next steps decide what a firing alert needs
            return ended(Outcome.SUCCEEDED, reason=f"still firing after {limit:g}s")
        return ended(Outcome.TIMED_OUT, reason=f"did not finish within {limit:g}s")
    except LeftAlone as err:
        return ended(Outcome.SKIPPED, reason=err.reason, resolved=err.resolved)
    except ActionFailed as err:
        return ended(Outcome.FAILED, reason=err.reason, resolved=err.resolved)
    except Exception as err:  # a bug or an answer nobody foresaw: the run fails and says so, the engine goes on
        log.exception("step %s of %s failed unexpectedly", step.name, step.action)
        return ended(Outcome.FAILED, reason=f"unexpected error: {err!r}")


async def _act(step: PlannedStep, run: _Run, ended: Callable[..., StepResult]) -> StepResult:
    action = actions.find(step.action)
    if action is None:
        raise ActionFailed(f"unknown action {step.action!r}")
    context = Context(run.kube, run.still_firing, run.poll_seconds, run.timer, run.tell)
    done = await action.execute(context, step.inputs)
    return ended(done.outcome, done.effect, done.reason, done.resolved)


def _ends_at_timeout(name: str) -> bool:
    action = actions.find(name)
    return action is not None and action.ends_at_timeout
