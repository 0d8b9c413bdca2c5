"""The store interface: what the daemon keeps, independent of the database.

Two stages share one store. ``accept`` appends a webhook body, as received,
to the inbox and returns once that is durable: this is all the webhook waits
for. The processor then reads the inbox in order and ``apply``-s dedup
decisions to alert state, advancing a cursor in the same transaction, so a
crash anywhere loses nothing and processes nothing twice.

The engine and the web layer depend on ``Store`` only. The SQLite backend
serves one replica; a PostgreSQL backend will implement the same protocol so
that several replicas can share state. Only modules in this package speak SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from receiver.alerts.dedup import AlertState, Decision, Status
from receiver.alerts.wire import Alert, Notification
from receiver.incidents.book import Book, Changes, Incident
from receiver.incidents.lifecycle import IncidentStatus, TimelineEvent
from receiver.incidents.severity import Severity
from receiver.playbooks.records import BreakerReset, RunRecord, RunSummary, StartedRun, StepRecord
from receiver.playbooks.runs import RunIntent, RunStatus

Decide = Callable[[AlertState | None, Alert, datetime], Decision]
"""The pure dedup decision (previous state, update, receipt time), policy bound."""


class StoreError(RuntimeError):
    """The store could not do what was asked (locked, full, broken): retry later."""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One accepted webhook body, in the order it was committed."""

    seq: int
    received_at: datetime
    body: bytes


@dataclass(frozen=True, slots=True)
class Processed:
    """What processing made of one inbox entry."""

    seq: int
    notification: Notification | None
    """None when the body could not be decoded (it was skipped)."""
    decisions: tuple[Decision, ...] = ()
    notification_id: int | None = None
    """Set when the notification carried news and was recorded."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as listed: its dedup state and its latest labels and annotations."""

    state: AlertState
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    generator_url: str


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One entry of the ordered log of alert news the engine consumes."""

    seq: int
    fingerprint: str
    kind: str
    """``fired``, ``resolved``, ``resolved_unseen`` or ``expired``."""
    starts_at: datetime
    ends_at: datetime | None
    at: datetime
    notification_id: int | None


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """What a listing asks for: filters, and the page (newest first, before a seq)."""

    statuses: frozenset[IncidentStatus] | None = None
    severities: frozenset[Severity] | None = None
    service: str | None = None
    before: int | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Derived:
    """What processed news changes beside alert state: the incidents, and the playbook runs it asks for."""

    changes: Changes
    runs: Sequence[RunIntent] = ()


Follow = Callable[[Sequence[Processed]], Derived]
"""What the incidents and playbooks make of processed news, inside the transaction that records it."""
FollowExpired = Callable[[Sequence[str]], Changes]
"""What the incidents make of expired alerts (their fingerprints), inside the transaction."""


class Store(Protocol):
    """Durable state. Every method either completes or changes nothing."""

    async def accept(self, body: bytes, received_at: datetime) -> int:
        """Append a webhook body to the inbox, durably; its sequence number."""
        ...

    async def inbox(self, after: int, limit: int) -> list[InboxEntry]:
        """Inbox entries with ``seq`` above ``after``, oldest first."""
        ...

    async def cursor(self) -> int:
        """The sequence number of the last processed inbox entry."""
        ...

    async def backlog(self) -> int:
        """How many inbox entries wait for processing."""
        ...

    async def apply(
        self,
        entries: Sequence[tuple[InboxEntry, Notification | None]],
        decide: Decide,
        follow: Follow | None = None,
    ) -> list[Processed]:
        """Decide every alert of ``entries`` and advance the cursor past them, all or nothing.

        ``follow`` is told what was processed, in the transaction, and its incident changes are written in it.
        """
        ...

    async def record(self, changes: Changes, runs: Sequence[RunIntent] = ()) -> None:
        """Write incident changes (a tick, a person's action) and runs in a transaction of their own."""
        ...

    async def load_incidents(self, book: Book, since: datetime) -> None:
        """Fill ``book`` with incidents not resolved or resolved since ``since``, and the numbering counters."""
        ...

    async def incidents(self, query: IncidentQuery) -> list[Incident]:
        """Incidents matching ``query``, newest first, without their members."""
        ...

    async def incident(self, id: str, timeline_limit: int) -> tuple[Incident, list[TimelineEvent]] | None:
        """One incident with its members and the last ``timeline_limit`` events of its timeline, or None."""
        ...

    async def count_open_incidents(self) -> Mapping[Severity, int]:
        """Incidents not resolved, by severity."""
        ...

    async def prune_inbox(self, before: datetime) -> int:
        """Forget processed inbox entries received before ``before``; how many."""
        ...

    async def list_alerts(self, statuses: frozenset[Status] | None = None) -> list[StoredAlert]:
        """Alerts with one of ``statuses`` (all when None), most recently changed first."""
        ...

    async def count_alerts(self) -> Mapping[Status, int]:
        """How many alerts are in each status."""
        ...

    async def prune_alerts(self, before: datetime) -> int:
        """Forget resolved and expired alerts unchanged since ``before``; how many."""
        ...

    async def expire(self, cutoff: datetime, now: datetime, follow: FollowExpired | None = None) -> list[str]:
        """Mark firing alerts last seen before ``cutoff`` expired; their fingerprints (told to ``follow``)."""
        ...

    async def events(self, after: int = 0, limit: int = 1000) -> list[AlertEvent]:
        """Alert news with ``seq`` above ``after``, oldest first."""
        ...

    async def pending_runs(self, limit: int = 100) -> list[RunRecord]:
        """Runs not judged yet, oldest first."""
        ...

    async def run_history(self, since: datetime) -> list[StartedRun]:
        """Runs started since ``since``."""
        ...

    async def failures_in_a_row(self, playbook: str, window: int) -> int:
        """How many of the playbook's last finished runs (at most ``window``) failed in a row since its last reset."""
        ...

    async def await_approval(self, run_id: int, reason: str) -> None:
        """A pending run waits for a person to approve or reject it."""
        ...

    async def start_run(self, run_id: int, at: datetime, *, dry_run: bool, reason: str) -> None:
        """A run starts executing (a dry-run or not), at ``at``."""
        ...

    async def add_step(self, run_id: int, step: StepRecord) -> None:
        """A step of a running run ended: append it to the run's steps."""
        ...

    async def finish_run(self, run_id: int, status: RunStatus, reason: str, at: datetime) -> None:
        """A run ends with a final ``status``; ValueError for a status that is not final."""
        ...

    async def interrupt_runs(self, now: datetime) -> list[RunSummary]:
        """Mark runs still running as interrupted; those runs."""
        ...

    async def runs(
        self,
        *,
        status: RunStatus | None = None,
        playbook: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[RunSummary]:
        """Runs, newest first, filtered, a page at a time (ids below ``before``)."""
        ...

    async def run(self, run_id: int) -> RunRecord | None:
        """One run with its alert, plan and steps, or None."""
        ...

    async def expire_approvals(self, before: datetime, now: datetime, reason: str) -> list[RunSummary]:
        """Reject runs awaiting approval since before ``before``; those runs."""
        ...

    async def block_runs(self, blocked: Sequence[tuple[int, str]], now: datetime) -> None:
        """Mark pending runs blocked (id, reason), all in one transaction."""
        ...

    async def reset_breaker(self, reset: BreakerReset) -> None:
        """Record that a person closed a playbook's circuit breaker."""
        ...

    async def alert_firing(self, fingerprint: str) -> bool:
        """Whether the alert fires now."""
        ...

    async def ping(self) -> None:
        """Prove the store is writable now; raise StoreError when it is not."""
        ...

    async def close(self) -> None:
        """Finish what is running and release the database."""
        ...
