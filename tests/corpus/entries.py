"""The corpus entries (alerts.yaml) joined with the vendored rules they come from, and ``alert()``.

An entry is one alerting rule of kube-prometheus-stack in one scenario: the labels Alertmanager receives,
the expression's value, the annotations Prometheus renders. ``alert()`` hands a test a copy whose subject
labels (namespace, pod, node...) are re-valued and whose annotations are rendered again; it refuses any
label the real alert does not carry, so a test cannot invent one.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.corpus.gotemplate import render

HERE = Path(__file__).parent
RULES = HERE / "rules"
RULE_LABELS = frozenset({"alertname", "severity"})
"""Labels an alert carries that its expression does not yield (the rule's own and the alert's name)."""


@dataclass(frozen=True)
class Rule:
    """One vendored alerting rule."""

    file: str
    group: str
    alert: str
    expr: str
    for_: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class Entry:
    """One corpus entry: a rule, and the alert it raises in the entry's scenario."""

    name: str
    variant: str | None
    rule: Rule
    source: str
    """Where the rule comes from: vendored file, group, chart and version."""
    labels: Mapping[str, str]
    """Every label Alertmanager receives, external labels included."""
    annotations: Mapping[str, str]
    value: float
    subject: tuple[str, ...]
    proof: Mapping[str, Any] = field(repr=False)

    @property
    def expr(self) -> str:
        return self.rule.expr

    @property
    def for_(self) -> str:
        return self.rule.for_

    @property
    def severity(self) -> str:
        return self.labels["severity"]


@dataclass(frozen=True)
class CorpusAlert:
    """An alert as Alertmanager delivers it for a corpus entry (labels possibly re-valued by a test)."""

    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    source: str
    severity: str
    variant: str | None = None
    generator_url: str = ""


@functools.cache
def document() -> dict[str, Any]:
    """alerts.yaml, parsed."""
    with (HERE / "alerts.yaml").open() as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


def external_labels() -> dict[str, str]:
    """The external labels alerts keep after Prometheus' alert relabeling."""
    return dict(document()["external_labels"])


@functools.cache
def _rules(file: str) -> dict[tuple[str, str, str], Rule]:
    with (RULES / file).open() as f:
        groups = yaml.safe_load(f)["groups"]
    found = {}
    for group in groups:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            key = (group["name"], rule["alert"], rule.get("labels", {}).get("severity", ""))
            found[key] = Rule(
                file=file,
                group=group["name"],
                alert=rule["alert"],
                expr=rule["expr"],
                for_=rule.get("for", "0s"),
                labels=rule.get("labels", {}),
                annotations=rule.get("annotations", {}),
            )
    return found


def _entry(raw: Mapping[str, Any]) -> Entry:
    chart = document()["chart"]
    where = raw["rule"]
    rule = _rules(where["file"])[(where["group"], raw["name"], where["severity"])]
    return Entry(
        name=raw["name"],
        variant=raw.get("variant"),
        rule=rule,
        source=f"tests/corpus/rules/{rule.file}, group {rule.group}, {chart['name']} {chart['version']}",
        labels={k: str(v) for k, v in raw["labels"].items()},
        annotations=dict(raw["annotations"]),
        value=float(raw["value"]),
        subject=tuple(raw["subject"]),
        proof=raw["proof"],
    )


@functools.cache
def entries() -> tuple[Entry, ...]:
    """Every corpus entry, in alerts.yaml's order."""
    return tuple(_entry(raw) for raw in document()["alerts"])


def expression_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels the rule's expression yields (what its templates see as ``$labels``)."""
    dropped = RULE_LABELS | external_labels().keys()
    return {k: v for k, v in labels.items() if k not in dropped}


def render_annotations(rule: Rule, labels: Mapping[str, str], value: float) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them for an alert with ``labels`` and ``value``."""
    seen = expression_labels(labels)
    return {key: render(template, seen, value) for key, template in rule.annotations.items()}


def find(name: str, variant: str | None = None) -> Entry:
    """The entry for alert ``name`` (and ``variant`` when several rules share the name). Raises ValueError."""
    found = [e for e in entries() if e.name == name]
    if not found:
        known = ", ".join(sorted({e.name for e in entries()}))
        raise ValueError(f"no corpus alert named {name!r} (known: {known})")
    variants = sorted(str(e.variant) for e in found)
    if variant is None and len(found) > 1:
        raise ValueError(f"{name} has several rules: pass variant= one of {variants}")
    chosen = [e for e in found if variant is None or e.variant == variant]
    if not chosen:
        raise ValueError(f"{name} has no variant {variant!r} (variants: {variants})")
    return chosen[0]


def alert(name: str, variant: str | None = None, **subject: str) -> CorpusAlert:
    """The corpus alert ``name``, its subject labels re-valued with ``subject``. Raises ValueError.

    Only labels that identify the alert's subject may be re-valued; a label the real alert does not
    carry, or one that names the exporter or the rule (job, instance of a kube-state-metrics alert,
    severity...), is refused, so tests cannot build alerts that do not exist.
    """
    entry = find(name, variant)
    for key, value in subject.items():
        if key not in entry.labels:
            raise ValueError(
                f"{name} does not carry a label {key!r}: its labels are {sorted(entry.labels)} (source: {entry.source})"
            )
        if key not in entry.subject:
            raise ValueError(
                f"{name}'s label {key!r} is not the alert's subject and cannot be re-valued "
                f"(subject labels: {list(entry.subject)})"
            )
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name}: label {key!r} must be a non-empty string, got {value!r}")
    labels = {**entry.labels, **subject}
    annotations = render_annotations(entry.rule, labels, entry.value) if subject else dict(entry.annotations)
    return CorpusAlert(
        name=name,
        labels=labels,
        annotations=annotations,
        source=entry.source,
        severity=entry.severity,
        variant=entry.variant,
        generator_url=generator_url(entry.rule.expr),
    )


def generator_url(expr: str) -> str:
    """The link Prometheus puts in an alert's generatorURL: its external URL and the expression's table view."""
    base: str = document()["prometheus_url"]
    return f"{base}/graph?g0.expr={urllib.parse.quote_plus(expr)}&g0.tab=1"
