"""Severity: SEV1 (worst) to SEV4, decided from an alert's labels and annotations, then its context.

Three layers, each pure and each leaving a reason, so that whoever reads an
incident can tell why it is a SEV2:

1. ordered rules from the configuration: matchers on labels and annotations
   (``=``, ``!=``, ``=~``, ``!~``) and an optional numeric threshold, such as
   "5xx rate above 50" or "p95 latency above 3x its baseline"; the first rule
   that matches decides;
2. otherwise the severity the source gave, understood in the usual spellings
   (``critical``, ``warning``, ``info``, ``page``, ``P0``-``P3``,
   ``SEV1``-``SEV4``, ``SEV-1``);
3. modifiers from the context: the environment tier (staging counts less
   than production), how many services the incident spans, and a cascade.

The context is honest: it escalates an incident **one level at most** above
its worst alert's own severity (that alert's rule or source severity, after
its tier). Spanning ``services_escalate_at`` services (subjects, never the
exporter: see ``subject``) moves it one level; a cascade moves it to
``cascade_severity`` but no further than that one level; both together still
move it one level. So an incident made only of warnings (SEV3) is SEV2 at
worst and one of infos SEV3: SEV1 takes an alert that is SEV2 on its own
(``critical``) in a cascade or across services, or a rule that says SEV1.
Nobody is paged with SEV1 for warnings unless a rule was written to do it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Literal

from receiver.alerts.matchers import Matcher, match_all


class Severity(IntEnum):
    """Lower is worse: ``min`` of several severities is the most severe."""

    SEV1 = 1
    SEV2 = 2
    SEV3 = 3
    SEV4 = 4

    def __str__(self) -> str:
        return self.name

    def shifted(self, steps: int) -> Severity:
        """``steps`` levels less severe (negative: more severe), kept within SEV1..SEV4."""
        return Severity(min(max(self.value + steps, Severity.SEV1.value), Severity.SEV4.value))


_SOURCE_WORDS = {
    "critical": Severity.SEV2,
    "page": Severity.SEV2,
    "error": Severity.SEV3,
    "high": Severity.SEV2,
    "warning": Severity.SEV3,
    "warn": Severity.SEV3,
    "medium": Severity.SEV3,
    "info": Severity.SEV4,
    "low": Severity.SEV4,
    "none": Severity.SEV4,
}
_SOURCE_PATTERNS = (
    (re.compile(r"^p([0-3])$"), 1),  # P0 is the worst: SEV1
    (re.compile(r"^sev[-_ ]?([1-4])$"), 0),
)


def source_severity(text: str) -> Severity | None:
    """The severity a source wrote (``critical``, ``P1``, ``SEV-2``...), or None if unknown. Pure."""
    word = text.strip().lower()
    if word in _SOURCE_WORDS:
        return _SOURCE_WORDS[word]
    for pattern, offset in _SOURCE_PATTERNS:
        if m := pattern.match(word):
            return Severity(int(m[1]) + offset)
    return None


Comparison = Literal[">", ">=", "<", "<="]


@dataclass(frozen=True, slots=True)
class Threshold:
    """A numeric condition on a label or annotation value, optionally relative to another value.

    ``value > 50`` is ``Threshold("value", ">", 50)``; "p95 above 3x the
    baseline" is ``Threshold("value", ">", 3, times="baseline")``.
    """

    name: str
    op: Comparison
    limit: float
    times: str | None = None

    def check(self, values: Mapping[str, str]) -> tuple[bool, str]:
        """Whether ``values`` satisfy the threshold, and a sentence saying what was compared."""
        actual = _number(values.get(self.name))
        if actual is None:
            return False, f"{self.name} is not a number"
        limit = self.limit
        what = f"{self.name}={actual:g} {self.op} {self.limit:g}"
        if self.times is not None:
            base = _number(values.get(self.times))
            if base is None:
                return False, f"{self.times} is not a number"
            limit = self.limit * base
            what = f"{self.name}={actual:g} {self.op} {self.limit:g}x {self.times}={base:g}"
        return _compare(actual, self.op, limit), what


@dataclass(frozen=True, slots=True)
class Rule:
    """One classification rule: every matcher and the threshold (if any) must hold."""

    name: str
    severity: Severity
    labels: tuple[Matcher, ...] = ()
    annotations: tuple[Matcher, ...] = ()
    threshold: Threshold | None = None

    def explain(self, labels: Mapping[str, str], annotations: Mapping[str, str]) -> str | None:
        """Why the rule matches, or None if it does not."""
        if not (match_all(self.labels, labels) and match_all(self.annotations, annotations)):
            return None
        if self.threshold is None:
            return f"rule {self.name!r} matched"
        ok, what = self.threshold.check({**labels, **annotations})
        return f"rule {self.name!r}: {what}" if ok else None


@dataclass(frozen=True, slots=True)
class Classification:
    """A severity and every reason that led to it, first to last."""

    severity: Severity
    reasons: tuple[str, ...]
    rule: str | None = None

    @property
    def reason(self) -> str:
        """The reasons as one sentence."""
        return "; ".join(self.reasons)


DEFAULT_SEVERITY = Severity.SEV4
SOURCE_LABELS = ("severity", "priority")
"""Labels where sources write their own severity, in the order they are looked at."""


def classify(labels: Mapping[str, str], annotations: Mapping[str, str], rules: Sequence[Rule] = ()) -> Classification:
    """The severity of one alert before its context is considered. Pure."""
    for rule in rules:
        why = rule.explain(labels, annotations)
        if why is not None:
            return Classification(rule.severity, (f"{why} -> {rule.severity}",), rule.name)
    for name in SOURCE_LABELS:
        if name in labels and (found := source_severity(labels[name])) is not None:
            return Classification(found, (f"label {name}={labels[name]!r} -> {found}",))
    return Classification(DEFAULT_SEVERITY, (f"no rule matched and no known severity label -> {DEFAULT_SEVERITY}",))


@dataclass(frozen=True, slots=True)
class Context:
    """What is known around an alert or incident when its severity is decided."""

    labels: Mapping[str, str] = field(default_factory=dict)
    services: int = 1
    cascade: bool = False


@dataclass(frozen=True, slots=True)
class Modifiers:
    """How context moves a severity; from the configuration."""

    tier_labels: tuple[str, ...] = ("environment", "env", "tier")
    tiers: Mapping[str, int] = field(
        default_factory=lambda: {"production": 0, "prod": 0, "staging": 1, "stage": 1, "development": 2, "dev": 2}
    )
    """Steps less severe per tier value; a value not listed moves nothing."""
    services_escalate_at: int = 3
    """An incident spanning at least this many services is one level more severe."""
    cascade_severity: Severity = Severity.SEV1
    """The most severe a cascade makes an incident (and never more than one level above its worst alert)."""


def modify(base: Classification, context: Context, modifiers: Modifiers) -> Classification:
    """``base`` moved by the tier, the number of services and a cascade, each move with its reason. Pure."""
    return in_context(tiered(base, context.labels, modifiers), context.services, context.cascade, modifiers)


def tiered(base: Classification, labels: Mapping[str, str], modifiers: Modifiers) -> Classification:
    """``base`` moved by the environment tier of the alert's labels: the alert's own part of ``modify``. Pure."""
    tier = next(((n, labels[n]) for n in modifiers.tier_labels if n in labels), None)
    if tier is not None and (steps := modifiers.tiers.get(tier[1].lower(), 0)):
        return _moved(base, steps, f"{tier[0]}={tier[1]!r}")
    return base


def in_context(worst: Classification, services: int, cascade: bool, modifiers: Modifiers) -> Classification:
    """An incident's part of ``modify``: its worst tiered alert moved by its services and a cascade. Pure.

    One level at most in all: the services move it one level, a cascade to ``cascade_severity`` but never
    beyond one level above ``worst`` (see the module's docstring).
    """
    result = worst
    if services >= modifiers.services_escalate_at:
        result = _moved(result, -1, f"{services} services affected")
    ceiling = max(worst.severity.shifted(-1), modifiers.cascade_severity)
    if cascade and result.severity > ceiling:
        why = f"cascade -> {ceiling}"
        if ceiling != modifiers.cascade_severity:
            why += f" (at most one level above its worst alert's {worst.severity})"
        result = replace(result, severity=ceiling, reasons=(*result.reasons, why))
    return result


def most_severe(classifications: Sequence[Classification]) -> Classification:
    """The most severe of several (an incident is as severe as its worst alert); the first on ties. Pure."""
    if not classifications:
        raise ValueError("no classification to choose from")
    return min(classifications, key=lambda c: c.severity)


def _moved(current: Classification, steps: int, why: str) -> Classification:
    severity = current.severity.shifted(steps)
    if severity == current.severity:
        return current
    return replace(current, severity=severity, reasons=(*current.reasons, f"{why} -> {severity}"))


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _compare(actual: float, op: Comparison, limit: float) -> bool:
    if op == ">":
        return actual > limit
    if op == ">=":
        return actual >= limit
    if op == "<":
        return actual < limit
    return actual <= limit
