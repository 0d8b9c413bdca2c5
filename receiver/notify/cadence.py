"""The update cadence: when an open incident's next status update is due, by its severity.

Incident-communication practice sets a rhythm: a SEV1 gets an update at least every 30 minutes, a
SEV2 every hour, a SEV3 every four hours (a SEV4 none). The deadline is kept in the store with the
incident's notification state; when it passes without a status update or a person's note, the
incident's channels get a reminder and the deadline moves one interval on (the reminder repeats until
someone updates). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from receiver.incidents.severity import Severity

DEFAULT_INTERVALS: Mapping[Severity, timedelta] = {
    Severity.SEV1: timedelta(minutes=30),
    Severity.SEV2: timedelta(hours=1),
    Severity.SEV3: timedelta(hours=4),
}


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often an open incident of each severity must be updated (absent: never)."""

    intervals: Mapping[Severity, timedelta] = field(default_factory=lambda: dict(DEFAULT_INTERVALS))

    def next_after(self, severity: Severity | None, at: datetime) -> datetime | None:
        """When an update is due after one at ``at`` (None: this severity has no cadence)."""
        interval = self.intervals.get(severity) if severity is not None else None
        return None if interval is None else at + interval

    def regraded(self, due: datetime | None, severity: Severity | None, now: datetime) -> datetime | None:
        """The deadline after the severity changed: a stricter cadence brings it closer, never further."""
        stricter = self.next_after(severity, now)
        if due is None or stricter is None:
            return stricter
        return min(due, stricter)
