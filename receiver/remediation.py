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

from receiver.book import Book
from receiver.plan import AlertFacts, NamespacePolicy
from receiver.playbook import Playbook, load_dirs
from receiver.runs import RunIntent, intents

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
