"""What the engine needs to ask for playbook runs: the playbooks, where they may act, and how to ask.

Loaded once at start (``load``); ``intents`` turns a batch's news into the
runs it asks for, using the incident book for each alert's incident,
severity and role (a symptom asks for nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from receiver.incidents.book import Book
from receiver.playbooks.guardrails import Limits
from receiver.playbooks.model import Playbook, load_dirs
from receiver.playbooks.plan import AlertFacts, NamespacePolicy
from receiver.playbooks.runs import RunIntent, intents

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Remediation:
    """The playbooks and the namespaces they may act in."""

    playbooks: tuple[Playbook, ...]
    namespaces: NamespacePolicy

    @classmethod
    def load(cls, dirs: Sequence[Path], namespaces: NamespacePolicy) -> Remediation:
        """Every valid playbook of ``dirs``; each invalid file is logged with its problems and left out."""
        loaded = load_dirs(dirs)
        for problem in loaded.problems:
            log.error("playbook rejected: %s", problem)
        log.info("playbooks loaded", extra={"playbooks": [p.name for p in loaded.playbooks]})
        return cls(loaded.playbooks, namespaces)

    def limits(self, playbook: str, defaults: Limits) -> Limits:
        """The guardrails of a playbook: the configured ones with its overrides."""
        found = next((p for p in self.playbooks if p.name == playbook), None)
        return defaults if found is None else limits_of(found, defaults)

    def intents(self, news: Sequence[AlertFacts], book: Book, now: datetime) -> list[RunIntent]:
        """The runs a batch's news asks for."""
        found: list[RunIntent] = []
        for alert in news:
            where = book.where(alert.fingerprint)
            incident, member = where if where is not None else (None, None)
            found += intents(
                self.playbooks,
                alert,
                self.namespaces,
                incident=incident.id if incident else None,
                severity=incident.severity if incident else None,
                symptom=member is not None and member.role == "symptom",
                now=now,
            )
        return found


def limits_of(found: Playbook, defaults: Limits) -> Limits:
    """The configured guardrails with the playbook's overrides."""
    g = found.spec.guardrails
    approval = None if g.approval is None else g.approval == "required"
    return defaults.overridden(
        dry_run=g.dry_run, approval=approval, cooldown=g.cooldown, max_runs_per_hour=g.max_runs_per_hour
    )
