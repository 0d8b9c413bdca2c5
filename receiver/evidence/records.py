"""Evidence as the store keeps it: a request, written with the change that asks for it, then its result.

A request's identity is (incident, alert fingerprint, alert episode = its
startsAt): an incident that opens, a playbook run that triggers, a
notification repeated or an inbox replayed all ask for the same request, and
the store keeps the first. Pure values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class EvidenceStatus(StrEnum):
    """Where a request stands."""

    PENDING = "pending"
    CLAIMED = "claimed"
    """Being captured; after a crash it is captured again (reads are idempotent)."""
    DONE = "done"
    """Captured, or its failure recorded (the outcome says which)."""


class Outcome(StrEnum):
    """How a capture ended. Bounded: a metric label."""

    CAPTURED = "captured"
    PARTIAL = "partial"
    """Some reads failed; the rest is there, the errors say which."""
    FAILED = "failed"
    """Nothing could be read (forbidden, not found, unreachable)."""
    TIMEOUT = "timeout"
    NO_CREDENTIALS = "no_credentials"
    NOTHING = "nothing"
    """The alert names no object to read."""


@dataclass(frozen=True, slots=True)
class EvidenceRequest:
    """Evidence asked for: of one alert episode, for one incident."""

    incident: str
    fingerprint: str
    episode: datetime
    """The alert's startsAt."""
    reason: str
    """Why: ``incident opened``, ``playbook crashloop triggered``."""
    labels: Mapping[str, str]
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedEvidence:
    """A request the evidence worker took, with its store id."""

    id: int
    request: EvidenceRequest


@dataclass(frozen=True, slots=True)
class EvidenceResult:
    """What a capture found, to store on its request (with a timeline line of its incident)."""

    id: int
    incident: str
    fingerprint: str
    outcome: str
    summary: str
    content: Mapping[str, Any]
    captured_at: datetime


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """One request and, once done, its result: what the API shows."""

    request: EvidenceRequest
    status: EvidenceStatus
    outcome: str | None
    summary: str
    content: Mapping[str, Any] | None
    captured_at: datetime | None
