"""Which playbooks an alert triggers, and what each would do: rendered, checked, nothing run.

``plan`` is the pure half of running a playbook: it renders every step's
input with the alert (and the incident, when there is one), checks every
Kubernetes name and namespace the way the API server and the configured
guardrails would, and says why a step is refused. ``receiver playbooks
plan`` prints it; the executor starts from it, so what the plan shows is
what a run would send. How each step renders is its action's ``plan``
(``receiver/playbooks/actions/``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.alerts import matchers
from receiver.incidents.severity import Severity
from receiver.playbooks import actions
from receiver.playbooks.actions.base import NamespacePolicy, Render
from receiver.playbooks.model import Playbook, Step
from receiver.playbooks.templating import TemplateError, UnsafeValue

__all__ = ["AlertFacts", "NamespacePolicy", "Plan", "PlannedStep", "plan", "plans", "triggers"]


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What playbooks see of an alert."""

    fingerprint: str
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime

    def values(self) -> dict[str, Any]:
        """The alert as templates see it: ``alert.labels.pod``, ``alert.status``..."""
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": self.starts_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step with its rendered input, or the reason it is refused."""

    name: str
    action: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    when: str | None = None
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What one playbook would do for one alert; refused as a whole if any step is."""

    playbook: str
    steps: tuple[PlannedStep, ...]

    @property
    def refused(self) -> str | None:
        """The first refusal, if any: a run with a refused step does not start."""
        return next((f"step {s.name!r}: {s.refused}" for s in self.steps if s.refused), None)


def triggers(playbook: Playbook, alert: AlertFacts, severity: Severity | None = None) -> bool:
    """Whether the playbook runs for this alert (and its incident's severity). Pure."""
    trigger = playbook.spec.trigger
    if trigger.alertname is not None and alert.labels.get("alertname") != trigger.alertname:
        return False
    if alert.status != trigger.status:
        return False
    if not matchers.match_all((matchers.parse(t) for t in trigger.labels), alert.labels):
        return False
    if trigger.severity is not None:
        return severity is not None and severity <= Severity[trigger.severity]
    return True


def plan(
    playbook: Playbook,
    alert: AlertFacts,
    namespaces: NamespacePolicy,
    incident: Mapping[str, Any] | None = None,
) -> Plan:
    """Every step of ``playbook`` rendered for ``alert``, with its checks. Pure."""
    values = {"alert": alert.values(), "incident": dict(incident or {}), "steps": {}}
    return Plan(playbook.name, tuple(_step(step, values, namespaces) for step in playbook.spec.steps))


def plans(
    playbooks: Sequence[Playbook],
    alert: AlertFacts,
    namespaces: NamespacePolicy,
    severity: Severity | None = None,
) -> list[Plan]:
    """The plans of every playbook the alert triggers, in playbook order."""
    incident = {"severity": str(severity)} if severity is not None else None
    return [plan(p, alert, namespaces, incident) for p in playbooks if triggers(p, alert, severity)]


def _step(step: Step, values: Mapping[str, Any], namespaces: NamespacePolicy) -> PlannedStep:
    action = actions.BY_NAME[step.action]  # the model admits only registered actions
    try:
        inputs = action.plan(step, Render(values, namespaces))
    except (TemplateError, UnsafeValue) as err:
        return PlannedStep(step.name, step.action, when=step.when, refused=str(err))
    inputs["timeout_seconds"] = step.timeout.total_seconds()
    return PlannedStep(step.name, step.action, inputs, step.when)
