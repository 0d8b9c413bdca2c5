"""Guardrails: whether a planned run may start, decided from its plan, the limits and the runs before it.

A remediation daemon that restarts the wrong thing, or the right thing in a
loop, is worse than none. So before a run starts, ``judge`` checks, in this
order: the plan is not refused (names and namespaces, see ``plan``); the
playbook's circuit breaker is closed (it opens after consecutive failures,
and only a person closes it); no other run is busy with the same objects;
none acted on them within the cooldown; the playbook has not run too often
this hour; and the blast radius stays within the caps (pods deleted per run
and per hour, replicas asked for, as each action counts them). The verdict names the first check that
blocks, as a bounded reason (a metric label) and a sentence for the audit.
A deferred step (``plan``) names its objects only once it is rendered, while
its run runs: ``judge_rendered`` then makes the same checks of them (busy,
cooldown, blast radius of the whole plan), and the executor fails the step
with the reason if one blocks. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from receiver.playbooks import actions
from receiver.playbooks.actions.base import Blast
from receiver.playbooks.plan import Plan, PlannedStep


class Block(StrEnum):
    """Why a run did not start. Bounded: safe as a metric label."""

    REFUSED = "refused"
    CIRCUIT_OPEN = "circuit_open"
    TARGET_BUSY = "target_busy"
    COOLDOWN = "cooldown"
    RATE_LIMIT = "rate_limit"
    BLAST_RADIUS = "blast_radius"


@dataclass(frozen=True, slots=True)
class Limits:
    """The guardrails of one playbook: the configuration's, with the playbook's overrides."""

    dry_run: bool = False
    approval: bool = False
    cooldown: timedelta = timedelta(minutes=10)
    max_runs_per_hour: int = 6
    max_replicas: int = 20
    max_pods_deleted_per_run: int = 3
    max_pods_deleted_per_hour: int = 10
    breaker_failures: int = 3
    """Consecutive failed runs that open the playbook's circuit breaker."""

    def overridden(
        self,
        *,
        dry_run: bool | None = None,
        approval: bool | None = None,
        cooldown: timedelta | None = None,
        max_runs_per_hour: int | None = None,
    ) -> Limits:
        """These limits with a playbook's overrides (None: keep)."""
        changes = {
            "dry_run": dry_run,
            "approval": approval,
            "cooldown": cooldown,
            "max_runs_per_hour": max_runs_per_hour,
        }
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PastRun:
    """What the guardrails need to know of an earlier run."""

    playbook: str
    targets: frozenset[str]
    started_at: datetime
    finished: bool
    pods_deleted: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """May the run start, and how: as a dry-run, after approval."""

    block: Block | None
    reason: str
    dry_run: bool = False
    approval: bool = False

    @property
    def allowed(self) -> bool:
        """Whether the run may start (possibly waiting for approval)."""
        return self.block is None


def targets_of(plan: Plan) -> frozenset[str]:
    """The objects a plan acts on, as ``Kind/namespace/name`` (nodes as ``Node/name``; a step acting on the owner of a
    pod or an autoscaler, as the pod or the autoscaler)."""
    found = set()
    for step in plan.steps:
        i = step.inputs
        if "node" in i:
            found.add(f"Node/{i['node']}")
        elif "namespace" in i and "name" in i:
            found.add(f"{i['kind']}/{i['namespace']}/{i['name']}")
        elif "owner_of" in i:  # its owner is known only when it runs: the object named stands for it
            found.add(f"{i['owner_of']['kind']}/{i['namespace']}/{i['owner_of']['name']}")
    return frozenset(found)


def pods_deleted(plan: Plan) -> int:
    """How many pods a plan deletes."""
    return sum(_blast(step).pods_deleted for step in plan.steps)


def replicas_asked(plan: Plan) -> int:
    """The most replicas a plan may set (its scaling steps' upper bounds)."""
    return max((_blast(step).replicas for step in plan.steps), default=0)


def _blast(step: PlannedStep) -> Blast:
    """What one step counts toward the blast radius: its action says (see ``actions/``)."""
    action = actions.find(step.action)
    return action.blast(step.inputs) if action is not None else Blast()


def judge(plan: Plan, limits: Limits, history: Sequence[PastRun], *, breaker_open: bool, now: datetime) -> Verdict:
    """Whether a run of ``plan`` may start now. Pure."""
    blocked = _first_block(plan, limits, history, breaker_open, now)
    if blocked is not None:
        return Verdict(*blocked)
    return Verdict(None, "allowed", dry_run=limits.dry_run, approval=limits.approval)


def judge_rendered(
    plan: Plan, step: PlannedStep, limits: Limits, others: Sequence[PastRun], *, now: datetime
) -> Verdict:
    """Whether a deferred step just rendered may act. Pure.

    ``plan``: its run's plan with the step rendered; ``others``: the runs started within the hour, its own run
    left out. Its objects must not be busy in another run nor acted on within the cooldown, and the whole plan
    must stay within the blast radius, as ``judge`` checked of the steps planned before the run started.
    """
    hour = [r for r in others if now - r.started_at < timedelta(hours=1)]
    blocked = _on_targets(targets_of(Plan(plan.playbook, (step,))), limits, others, now) or _blast_radius(
        plan, limits, hour
    )
    if blocked is not None:
        return Verdict(*blocked)
    return Verdict(None, "allowed", dry_run=limits.dry_run, approval=limits.approval)


def breaker_opens(consecutive_failures: int, limits: Limits) -> bool:
    """Whether this many failed runs in a row open the playbook's circuit breaker. Pure."""
    return consecutive_failures >= limits.breaker_failures


def _first_block(
    plan: Plan, limits: Limits, history: Sequence[PastRun], breaker_open: bool, now: datetime
) -> tuple[Block, str] | None:
    if plan.refused:
        return Block.REFUSED, plan.refused
    if breaker_open:
        return (
            Block.CIRCUIT_OPEN,
            f"playbook {plan.playbook!r} failed {limits.breaker_failures} times in a row: reset it",
        )
    on_targets = _on_targets(targets_of(plan), limits, history, now)
    if on_targets is not None:
        return on_targets
    hour = [r for r in history if now - r.started_at < timedelta(hours=1)]
    mine = [r for r in hour if r.playbook == plan.playbook]
    if len(mine) >= limits.max_runs_per_hour:
        return (
            Block.RATE_LIMIT,
            f"playbook {plan.playbook!r} ran {len(mine)} times in the last hour (limit {limits.max_runs_per_hour})",
        )
    return _blast_radius(plan, limits, hour)


def _on_targets(
    targets: frozenset[str], limits: Limits, history: Sequence[PastRun], now: datetime
) -> tuple[Block, str] | None:
    busy = [r for r in history if not r.finished and r.targets & targets]
    if busy:
        return Block.TARGET_BUSY, f"{', '.join(sorted(busy[0].targets & targets))}: another run is busy with it"
    recent = [r for r in history if r.targets & targets and now - r.started_at < limits.cooldown]
    if recent:
        since = now - max(r.started_at for r in recent)
        return Block.COOLDOWN, f"a run acted on the same objects {since} ago (cooldown {limits.cooldown})"
    return None


def _blast_radius(plan: Plan, limits: Limits, hour: Sequence[PastRun]) -> tuple[Block, str] | None:
    deleting = pods_deleted(plan)
    if deleting > limits.max_pods_deleted_per_run:
        return Block.BLAST_RADIUS, f"it would delete {deleting} pods (limit {limits.max_pods_deleted_per_run} per run)"
    deleted = sum(r.pods_deleted for r in hour)
    if deleting and deleted + deleting > limits.max_pods_deleted_per_hour:
        return Block.BLAST_RADIUS, (
            f"{deleted} pods were deleted in the last hour; {deleting} more passes the limit of"
            f" {limits.max_pods_deleted_per_hour}"
        )
    asked = replicas_asked(plan)
    if asked > limits.max_replicas:
        return Block.BLAST_RADIUS, f"it may scale to {asked} replicas (limit {limits.max_replicas})"
    return None
