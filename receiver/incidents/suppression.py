"""Suppression: symptoms of a known root cause open no incident of their own.

A dependency says that while a root-cause alert fires (``DatabaseDown``),
alerts matching its symptom matchers (``HighLatency``, ``HighErrorRate``)
that share the given labels with it are symptoms: they are attached to the
root cause's incident and trigger nothing. It reads like Alertmanager's
``inhibit_rules`` (source, target, equal), but the symptoms stay visible in
the incident instead of disappearing. Pure: the engine passes the root-cause
alerts firing now, and asks again when one of them resolves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from receiver.alerts.matchers import Matcher, match_all


@dataclass(frozen=True, slots=True)
class Dependency:
    """While an alert matching ``root`` fires, alerts matching ``symptoms`` with equal ``equal`` labels are symptoms."""

    name: str
    root: tuple[Matcher, ...]
    symptoms: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FiringRoot:
    """A firing alert that may be a root cause."""

    fingerprint: str
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why an alert is a symptom: the dependency, and the root-cause alert it hangs on."""

    dependency: str
    root: str
    """The root-cause alert's fingerprint."""
    reason: str


def suppression(
    fingerprint: str, labels: Mapping[str, str], firing: Iterable[FiringRoot], dependencies: Sequence[Dependency]
) -> Suppression | None:
    """Whether the alert is a symptom of one of the ``firing`` alerts, and of which. Pure.

    An alert never suppresses itself, and an ``equal`` label must be present
    (not empty) on both sides, as in Alertmanager.
    """
    roots = [r for r in firing if r.fingerprint != fingerprint]
    for dependency in dependencies:
        if not match_all(dependency.symptoms, labels):
            continue
        for root in roots:
            if match_all(dependency.root, root.labels) and _share(dependency.equal, labels, root.labels):
                shared = ", ".join(f"{n}={labels[n]!r}" for n in dependency.equal)
                where = f" with the same {shared}" if shared else ""
                why = f"symptom of {root.labels.get('alertname', root.fingerprint)}{where} ({dependency.name})"
                return Suppression(dependency.name, root.fingerprint, why)
    return None


def _share(names: Sequence[str], a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    return all(a.get(n) and a.get(n) == b.get(n) for n in names)
