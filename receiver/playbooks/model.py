"""Playbooks: the YAML format, its typed model, and loading a directory of them.

A playbook says when it runs (its trigger) and what it does (its steps, in
order). The format is versioned (``apiVersion: receiver/v1``, ``kind:
Playbook``) and published as JSON Schema (``playbooks/schema/playbook-v1.json``,
generated from these models and kept equal to them by a test). Loading is
strict: an unknown key, a wrong type, a bad matcher or a template that does
not parse rejects the file with its path, the key path and the reason, and
the other files still load. Nothing here renders or runs anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml

from receiver.alerts import matchers
from receiver.durations import Duration
from receiver.playbooks.templating import TemplateError, check_expression, check_template

API_VERSION = "receiver/v1"
Name = Annotated[str, pydantic.Field(min_length=1, max_length=253)]


def _matcher(text: str) -> str:
    matchers.parse(text)  # InvalidMatcher is a ValueError naming what is wrong
    return text


def _checked(check: Callable[[str], None]) -> Callable[[str], str]:
    """A validator that parses a template or condition at load time, so a broken one rejects its file."""

    def validate(text: str) -> str:
        try:
            check(text)
        except TemplateError as err:
            raise ValueError(str(err)) from None
        return text

    return validate


MatcherText = Annotated[str, pydantic.AfterValidator(_matcher)]
Template = Annotated[str, pydantic.Field(min_length=1), pydantic.AfterValidator(_checked(check_template))]
"""Text rendered with the alert, the incident and earlier steps: ``{{ alert.labels.pod }}``."""
Expression = Annotated[str, pydantic.Field(min_length=1), pydantic.AfterValidator(_checked(check_expression))]
"""A condition over the same values: ``alert.status == "firing" and steps.restart.ok``."""


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    """When a playbook runs: every given condition must hold."""

    alertname: str | None = None
    labels: list[MatcherText] = []
    """Label matchers in Alertmanager's syntax, e.g. ``namespace=~"prod-.*"``."""
    status: Literal["firing", "resolved"] = "firing"
    """Firing by default; ``resolved`` runs when the alert resolves."""
    severity: Literal["SEV1", "SEV2", "SEV3", "SEV4"] | None = None
    """The incident's severity must be this or worse."""


class Target(_Model):
    """A namespaced object; ``namespace`` and ``name`` are templates, checked after rendering."""

    namespace: Template
    name: Template


class PodTarget(Target):
    """A pod."""

    kind: Literal["Pod"] = "Pod"


class DeploymentTarget(Target):
    """A Deployment."""

    kind: Literal["Deployment"] = "Deployment"


class WorkloadTarget(Target):
    """A Deployment, StatefulSet or DaemonSet."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"


class ScalableTarget(Target):
    """A Deployment or StatefulSet."""

    kind: Literal["Deployment", "StatefulSet"] = "Deployment"


class ObjectTarget(Target):
    """Any object annotate and label know about."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Pod", "Service"] = "Deployment"


class _Step(_Model):
    """What every step has: a name, an optional condition and a time limit."""

    name: Name
    when: Expression | None = None
    """Run the step only if this holds (over the alert, the incident and earlier steps)."""
    timeout: Duration = timedelta(minutes=1)


class Scale(_Step):
    """Set a workload's replicas, absolutely or relatively, clamped to ``min``..``max``."""

    action: Literal["scale"]
    target: ScalableTarget
    replicas: Annotated[int, pydantic.Field(ge=0)] | None = None
    by: int | None = None
    """Relative change, e.g. ``2`` or ``-1``."""
    min: Annotated[int, pydantic.Field(ge=0)] = 1
    max: Annotated[int, pydantic.Field(ge=1)] = 10

    @pydantic.model_validator(mode="after")
    def _one_of(self) -> Scale:
        if (self.replicas is None) == (self.by is None):
            raise ValueError("give exactly one of replicas (absolute) and by (relative)")
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class RolloutRestart(_Step):
    """Restart a workload's pods, as ``kubectl rollout restart`` does."""

    action: Literal["rollout_restart"]
    target: WorkloadTarget


class RolloutUndo(_Step):
    """Roll a Deployment back to its previous revision (only if its last rollout is younger than ``max_age``)."""

    action: Literal["rollout_undo"]
    target: DeploymentTarget
    max_age: Duration | None = None


class DeletePod(_Step):
    """Delete one pod (its controller makes a new one)."""

    action: Literal["delete_pod"]
    target: PodTarget


class SetEnv(_Step):
    """Set environment variables of a workload's container (a rolling update)."""

    action: Literal["set_env"]
    target: WorkloadTarget
    container: Template | None = None
    """Default: the first container."""
    env: Annotated[dict[str, Template], pydantic.Field(min_length=1)]


class NodeTarget(_Model):
    """A node."""

    name: Template


class Cordon(_Step):
    """Mark a node unschedulable (``cordon``) or schedulable again (``uncordon``)."""

    action: Literal["cordon", "uncordon"]
    target: NodeTarget


class Annotate(_Step):
    """Set annotations (``annotate``) or labels (``label``) on an object."""

    action: Literal["annotate", "label"]
    target: ObjectTarget
    values: Annotated[dict[str, Template], pydantic.Field(min_length=1)]


class Wait(_Step):
    """Wait, e.g. to see whether the alert resolves after the previous step."""

    action: Literal["wait"]
    duration: Duration


class WaitForResolution(_Step):
    """Wait for the alert to resolve: the playbook ends as a success if it does within ``timeout``."""

    action: Literal["wait_for_resolution"]


class Notify(_Step):
    """Send a message (wired to notifications when they land)."""

    action: Literal["notify"]
    message: Template
    channel: str = "default"


Step = Annotated[
    Scale | RolloutRestart | RolloutUndo | DeletePod | SetEnv | Cordon | Annotate | Wait | WaitForResolution | Notify,
    pydantic.Field(discriminator="action"),
]


class Guardrails(_Model):
    """Per-playbook overrides of the configured guardrails (unset: the configuration's)."""

    dry_run: bool | None = None
    cooldown: Duration | None = None
    max_runs_per_hour: Annotated[int, pydantic.Field(ge=1)] | None = None
    approval: Literal["none", "required"] | None = None


class Metadata(_Model):
    """Who the playbook is."""

    name: Annotated[str, pydantic.Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    description: str = ""


class Spec(_Model):
    """When and what."""

    trigger: Trigger
    guardrails: Guardrails = Guardrails()
    steps: Annotated[list[Step], pydantic.Field(min_length=1)]

    @pydantic.model_validator(mode="after")
    def _unique_step_names(self) -> Spec:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must be unique (later steps refer to earlier ones by name): {names}")
        return self


class Playbook(_Model):
    """One playbook file."""

    apiVersion: Literal["receiver/v1"]
    kind: Literal["Playbook"]
    metadata: Metadata
    spec: Spec

    @property
    def name(self) -> str:
        """The playbook's name."""
        return self.metadata.name


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a file was rejected: where, and what is wrong."""

    file: Path
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '(top level)'}: {self.message}"


@dataclass(frozen=True, slots=True)
class Loaded:
    """The playbooks of a directory that loaded, and the problems of those that did not."""

    playbooks: tuple[Playbook, ...]
    problems: tuple[Problem, ...]


def schema() -> dict[str, Any]:
    """The JSON Schema of a playbook file (``playbooks/schema/playbook-v1.json``)."""
    document = Playbook.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = "https://github.com/receiver/receiver/playbooks/schema/playbook-v1.json"
    return document


def load_dirs(dirs: Sequence[Path]) -> Loaded:
    """Every ``*.yaml``/``*.yml`` file of ``dirs`` (not their subdirectories), in name order."""
    playbooks: list[Playbook] = []
    problems: list[Problem] = []
    seen: dict[str, Path] = {}
    for file in _files(dirs):
        found = load_file(file)
        if isinstance(found, Playbook):
            if found.name in seen:
                problems.append(
                    Problem(file, "metadata.name", f"{found.name!r} is already the name of {seen[found.name]}")
                )
                continue
            seen[found.name] = file
            playbooks.append(found)
        else:
            problems.extend(found)
    return Loaded(tuple(playbooks), tuple(problems))


def load_file(file: Path) -> Playbook | list[Problem]:
    """One playbook, or every problem of its file."""
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        return [Problem(file, "", f"cannot be read: {err}")]
    except yaml.YAMLError as err:
        return [Problem(file, "", f"is not YAML: {err}")]
    if not isinstance(raw, dict):
        return [Problem(file, "", "must be a YAML mapping with apiVersion, kind, metadata and spec")]
    try:
        return Playbook.model_validate(raw)
    except pydantic.ValidationError as err:
        return [Problem(file, _path(e["loc"]), _message(e)) for e in err.errors()]


def _files(dirs: Sequence[Path]) -> Iterator[Path]:
    for directory in dirs:
        if not directory.is_dir():
            yield directory  # a missing directory is reported as a file that cannot be read
            continue
        yield from sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _ACTIONS:
            continue  # the discriminator's branch name: the path already says which step
        else:
            out += f".{part}" if out else str(part)
    return out


_ACTIONS = frozenset(
    {"scale", "rollout_restart", "rollout_undo", "delete_pod", "set_env", "cordon", "uncordon", "annotate", "label"}
    | {"wait", "wait_for_resolution", "notify"}
)


def _message(error: Any) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
