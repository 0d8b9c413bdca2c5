"""Which playbooks an alert triggers, and what each would do: rendered, checked, nothing run.

``plan`` is the pure half of running a playbook: it renders every step's
input with the alert (and the incident, when there is one), checks every
Kubernetes name and namespace the way the API server and the configured
guardrails would, and says why a step is refused. ``receiver playbooks
plan`` prints it; the executor starts from it, so what the plan shows is
what a run would send. How each step renders is its action's ``plan``
(``receiver/playbooks/actions/``).

A step that cannot be rendered refuses the whole run (nothing half-done),
unless it is guarded by a ``when``: then it is planned as *deferred*, with
its render error and the step as written. The executor renders it when its
condition holds, against the values of that moment (``render_deferred``); a
condition that does not hold skips it as any other. A value that renders but
is refused (a denied namespace, a name that is not a Kubernetes name)
refuses the run, guarded or not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from receiver.alerts import matchers
from receiver.incidents.severity import Severity
from receiver.playbooks import actions
from receiver.playbooks.actions.base import NamespacePolicy, Render
from receiver.playbooks.model import Playbook, Step, step_of
from receiver.playbooks.templating import TemplateError, UnsafeValue

__all__ = ["AlertFacts", "NamespacePolicy", "Plan", "PlannedStep", "plan", "plans", "render_deferred", "triggers"]


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
    """One step with its rendered input, or the reason it is refused, or why it is deferred to run time."""

    name: str
    action: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    when: str | None = None
    refused: str | None = None
    deferred: str | None = None
    """Why its inputs could not be rendered when planned (its ``when`` guards it: rendered at run time, if it
    holds). Kept once rendered: ``inputs`` are then what it rendered to."""
    source: Mapping[str, Any] | None = None
    """A deferred step as written in its playbook (JSON values), rendered at run time."""

    @property
    def pending(self) -> bool:
        """Deferred and not rendered yet: its inputs are unknown."""
        return self.deferred is not None and not self.inputs


@dataclass(frozen=True, slots=True)
class Plan:
    """What one playbook would do for one alert; refused as a whole if any step is."""

    playbook: str
    steps: tuple[PlannedStep, ...]

    @property
    def refused(self) -> str | None:
        """The first refusal, if any: a run with a refused step does not start."""
        return next((f"step {s.name!r}: {s.refused}" for s in self.steps if s.refused), None)

    def with_step(self, step: PlannedStep) -> Plan:
        """This plan with ``step`` in place of its step of the same name (a deferred step, rendered)."""
        return replace(self, steps=tuple(step if s.name == step.name else s for s in self.steps))


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


def render_deferred(step: PlannedStep, values: Mapping[str, Any], namespaces: NamespacePolicy) -> PlannedStep:
    """A deferred step rendered with ``values`` as they are now (the alert, the incident, earlier steps). Pure.

    Its inputs, or ``refused`` saying why it still cannot be rendered; ``deferred`` is kept (why it was).
    """
    if step.source is None:
        return replace(step, refused=f"deferred, and its definition was not kept: {step.deferred}")
    rendered = _step(step_of(step.source), values, namespaces, defer=False)
    return replace(rendered, deferred=step.deferred, source=step.source)


def _step(step: Step, values: Mapping[str, Any], namespaces: NamespacePolicy, defer: bool = True) -> PlannedStep:
    action = actions.BY_NAME[step.action]  # the model admits only registered actions
    try:
        inputs = action.plan(step, Render(values, namespaces))
    except TemplateError as err:
        if defer and step.when is not None:
            source = step.model_dump(mode="json")
            return PlannedStep(step.name, step.action, when=step.when, deferred=str(err), source=source)
        return PlannedStep(step.name, step.action, when=step.when, refused=str(err))
    except UnsafeValue as err:
        return PlannedStep(step.name, step.action, when=step.when, refused=str(err))
    inputs["timeout_seconds"] = step.timeout.total_seconds()
    return PlannedStep(step.name, step.action, inputs, step.when)
