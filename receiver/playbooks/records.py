"""Recorded playbook runs as typed values: what a store gives back, and what the runner and the API read.

A store keeps runs in whatever shape suits its database (SQLite keeps the
alert, the plan and the steps as JSON text); it hands them out only as these
frozen values, so that nothing above the store parses a column or knows a
row's keys. A circuit-breaker reset is a record of its own, not a run: a
person closed a playbook's breaker, and its failures before that moment no
longer count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receiver.playbooks.executor import Outcome, StepResult
from receiver.playbooks.plan import AlertFacts, Plan
from receiver.playbooks.runs import RunStatus


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One ended step of a run: its outcome, why, how long it took, the object's state before and after."""

    name: str
    action: str
    outcome: Outcome
    reason: str = ""
    seconds: float = 0.0
    before: Mapping[str, Any] | None = None
    """The fields the action looks at, as it found them (None: it read nothing, e.g. ``wait``)."""
    after: Mapping[str, Any] | None = None
    dry_run: bool = False
    resolved: tuple[str, ...] = ()
    """For a target named by what it owns (``owner_of``): the objects followed to it, e.g. ``Pod/shop/web-1``,
    ``ReplicaSet/shop/web-7d4b9c6f5``, ``Deployment/shop/web`` (empty otherwise)."""

    @classmethod
    def of(cls, result: StepResult) -> StepRecord:
        """The record of a step the executor ended."""
        effect = result.effect
        return cls(
            name=result.name,
            action=result.action,
            outcome=result.outcome,
            reason=result.reason,
            seconds=round(result.seconds, 3),
            before=dict(effect.before) if effect else None,
            after=dict(effect.after) if effect else None,
            dry_run=bool(effect and effect.dry_run),
            resolved=result.resolved,
        )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A run as listed: who, what, where it stands and when it moved."""

    id: int
    playbook: str
    fingerprint: str
    incident: str | None
    status: RunStatus
    reason: str
    """Why it is blocked, failed, approved or rejected."""
    dry_run: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunRecord(RunSummary):
    """A whole run: the summary, the alert it is for, its plan and every step that ended."""

    episode: datetime
    """The alert's startsAt: a new firing episode may run the playbook again."""
    alert: AlertFacts
    plan: Plan
    steps: tuple[StepRecord, ...]


@dataclass(frozen=True, slots=True)
class StartedRun:
    """What the guardrails need of a run that started: its plan, when, and whether it ended."""

    playbook: str
    plan: Plan
    started_at: datetime
    finished: bool
    id: int | None = None
    """The run's id (a run's own checks leave it out)."""


@dataclass(frozen=True, slots=True)
class BreakerReset:
    """A person closed a playbook's circuit breaker: failed runs that ended before ``at`` no longer count."""

    playbook: str
    actor: str
    reason: str
    at: datetime
