"""Playbook runs: which runs a piece of news asks for, their identity, and the states of their records.

A run is recorded before anything executes, in the transaction that records
the news that triggered it: the engine cannot lose a triggered run by dying
between the two. Its identity is (playbook, alert fingerprint, firing
episode): however often Alertmanager repeats a notification, and however
often the inbox is replayed, a playbook runs at most once per episode of an
alert. Symptoms of a known root cause trigger nothing. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from receiver.incidents.severity import Severity
from receiver.playbooks.model import Playbook
from receiver.playbooks.plan import AlertFacts, NamespacePolicy, Plan, plan, triggers


class RunStatus(StrEnum):
    """Where a run stands. Bounded: safe as a metric label."""

    PENDING = "pending"
    """Recorded; the guardrails have not judged it yet."""
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    """A guardrail refused it (the reason says which)."""
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"
    """It was running when the engine stopped; it is not started again."""

    @property
    def final(self) -> bool:
        """Whether the run will not change any more."""
        return self not in (RunStatus.PENDING, RunStatus.AWAITING_APPROVAL, RunStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class RunIntent:
    """A run asked for by a piece of news, before the guardrails judge it."""

    playbook: str
    fingerprint: str
    episode: datetime
    """The alert's startsAt: a new firing episode may run the playbook again."""
    incident: str | None
    plan: Plan
    alert: AlertFacts
    created_at: datetime


def intents(
    playbooks: Sequence[Playbook],
    alert: AlertFacts,
    namespaces: NamespacePolicy,
    *,
    incident: str | None,
    severity: Severity | None,
    symptom: bool,
    now: datetime,
) -> list[RunIntent]:
    """The runs one piece of news asks for (none for a symptom). Pure."""
    if symptom:
        return []
    context = {"id": incident, "severity": str(severity) if severity else None}
    return [
        RunIntent(p.name, alert.fingerprint, alert.starts_at, incident, plan(p, alert, namespaces, context), alert, now)
        for p in playbooks
        if triggers(p, alert, severity)
    ]
