"""Playbooks: the YAML format, its typed model, and loading a directory of them.

A playbook says when it runs (its trigger) and what it does (its steps, in
order). The format is versioned (``apiVersion: receiver/v1``, ``kind:
Playbook``) and published as JSON Schema (``playbooks/schema/playbook-v1.json``,
generated from these models and kept equal to them by a test). Loading is
strict: an unknown key, a wrong type, a bad matcher or a template that does
not parse rejects the file with its path, the key path and the reason, and
the other files still load. Nothing here renders or runs anything. A step's
model is its action's (``receiver/playbooks/actions/``): the schema's branches
follow from the registry of actions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import pydantic
import yaml

from receiver.alerts import matchers
from receiver.durations import Duration
from receiver.playbooks import actions
from receiver.playbooks.actions.base import Model, StepBase

API_VERSION = "receiver/v1"


def _matcher(text: str) -> str:
    matchers.parse(text)  # InvalidMatcher is a ValueError naming what is wrong
    return text


MatcherText = Annotated[str, pydantic.AfterValidator(_matcher)]


class Trigger(Model):
    """When a playbook runs: every given condition must hold."""

    alertname: str | None = None
    labels: list[MatcherText] = []  # noqa: RUF012 (a pydantic field: copied per instance)
    """Label matchers in Alertmanager's syntax, e.g. ``namespace=~"prod-.*"``."""
    status: Literal["firing", "resolved"] = "firing"
    """Firing by default; ``resolved`` runs when the alert resolves."""
    severity: Literal["SEV1", "SEV2", "SEV3", "SEV4"] | None = None
    """The incident's severity must be this or worse."""


if TYPE_CHECKING:
    Step = StepBase
else:
    Step = Annotated[Union[actions.step_models()], pydantic.Field(discriminator="action")]  # noqa: UP007
    """One step: the model of its ``action``, from the registry of actions."""


_STEP: pydantic.TypeAdapter[Step] = pydantic.TypeAdapter(Step)


def step_of(raw: Mapping[str, Any]) -> Step:
    """One step from its JSON form (a deferred step's ``source``, kept in its run's plan)."""
    return _STEP.validate_python(raw)


class Guardrails(Model):
    """Per-playbook overrides of the configured guardrails (unset: the configuration's)."""

    dry_run: bool | None = None
    cooldown: Duration | None = None
    max_runs_per_hour: Annotated[int, pydantic.Field(ge=1)] | None = None
    approval: Literal["none", "required"] | None = None


class Metadata(Model):
    """Who the playbook is."""

    name: Annotated[str, pydantic.Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    description: str = ""


class Spec(Model):
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


class Playbook(Model):
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
        elif part in actions.NAMES:
            continue  # the discriminator's branch name: the path already says which step
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
