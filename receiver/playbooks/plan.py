"""Which playbooks an alert triggers, and what each would do: rendered, checked, nothing run.

``plan`` is the pure half of running a playbook: it renders every step's
input with the alert (and the incident, when there is one), checks every
Kubernetes name and namespace the way the API server and the configured
guardrails would, and says why a step is refused. ``receiver playbooks
plan`` prints it; the executor (issue #4, next) starts from it, so what the
plan shows is what a run would send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.alerts import matchers
from receiver.incidents.severity import Severity
from receiver.playbooks.model import (
    Annotate,
    Cordon,
    DeletePod,
    DeploymentTarget,
    Notify,
    ObjectTarget,
    Playbook,
    PodTarget,
    RolloutRestart,
    RolloutUndo,
    ScalableTarget,
    Scale,
    SetEnv,
    Step,
    Wait,
    WaitForResolution,
    WorkloadTarget,
)
from receiver.playbooks.templating import (
    TemplateError,
    UnsafeValue,
    dns1123_label,
    dns1123_subdomain,
    env_name,
    label_value,
    qualified_name,
    render,
)

Targets = PodTarget | DeploymentTarget | WorkloadTarget | ScalableTarget | ObjectTarget


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
    try:
        inputs = _inputs(step, values, namespaces)
    except (TemplateError, UnsafeValue) as err:
        return PlannedStep(step.name, step.action, when=step.when, refused=str(err))
    inputs["timeout_seconds"] = step.timeout.total_seconds()
    return PlannedStep(step.name, step.action, inputs, step.when)


def _inputs(step: Step, values: Mapping[str, Any], namespaces: NamespacePolicy) -> dict[str, Any]:
    if isinstance(step, Cordon):
        return {"node": dns1123_subdomain(render(step.target.name, values), "node name")}
    if isinstance(step, Wait):
        return {"seconds": step.duration.total_seconds()}
    if isinstance(step, WaitForResolution):
        return {}
    if isinstance(step, Notify):
        return {"channel": step.channel, "message": render(step.message, values)}
    out = _target(step.target, values, namespaces)
    if isinstance(step, Scale):
        out |= {"replicas": step.replicas, "by": step.by, "min": step.min, "max": step.max}
    elif isinstance(step, SetEnv):
        container = render(step.container, values) if step.container else None
        out["container"] = dns1123_label(container, "container name") if container else None
        out["env"] = {env_name(k): render(v, values) for k, v in step.env.items()}
    elif isinstance(step, Annotate):
        check = label_value if step.action == "label" else (lambda v: v)
        out["values"] = {qualified_name(k, "key"): check(render(v, values)) for k, v in step.values.items()}
    elif isinstance(step, RolloutUndo) and step.max_age is not None:
        out["max_age_seconds"] = step.max_age.total_seconds()
    assert isinstance(step, Scale | SetEnv | Annotate | RolloutUndo | RolloutRestart | DeletePod)
    return out


def _target(target: Targets, values: Mapping[str, Any], namespaces: NamespacePolicy) -> dict[str, Any]:
    namespace = namespaces.check(dns1123_label(render(target.namespace, values), "namespace"))
    name = dns1123_subdomain(render(target.name, values), "name")
    return {"kind": target.kind, "namespace": namespace, "name": name}
