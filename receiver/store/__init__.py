"""The store contract: what the daemon keeps, by concept, independent of the database.

Two stages share one store. ``accept`` appends a webhook body, as received,
to the inbox and returns once that is durable: this is all the webhook waits
for. The engine then reads the inbox in order, reads the alert states it
needs, decides (pure code, outside any transaction), and hands the store one
``Batch`` of values to write: the decisions, the incident changes, the run
intents and the new cursor, in one transaction that first checks that the
cursor is still where the engine read from (the defence against a second
engine). A crash anywhere loses nothing and processes nothing twice.

The contract is split by concept, and each component depends on the
protocols it uses:

- ``InboxStore``: accept, read in order, the cursor, the backlog, pruning;
- ``AlertStore``: the alert states dedup reads, the listing the API pages,
  counts, expiry candidates, the log of alert news, pruning;
- ``IncidentStore``: incidents, their members and timelines;
- ``RunStore``: playbook runs;
- ``EvidenceStore``: evidence requests, claimed and captured, and their results;
- ``ProcessingStore``: the transactions that span them (a processed batch,
  an expiry), written as values the engine decided;
- ``OutboxStore``: notifications to send, claimed when due, their outcomes
  (their rows, the incidents' channels and update deadlines are written by
  the ``Batch``, ``Expiry`` and ``record`` transactions of the incident
  changes that cause them);
- later, ``TimerStore`` (escalation deadlines, claimed when due) will join
  them here.

A backend implements them all (``Store``); ``receiver.store.backends`` makes
the one ``store.backend`` names. Identities are domain keys (inbox seq,
fingerprint, incident id, incident id + fingerprint for a member): storage
row ids never leave the backend. The SQLite backend serves one replica; a
PostgreSQL backend will implement the same protocols and pass the same
contract tests (``tests/store_contract``). Only modules in this package speak
SQL.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from receiver.alerts.dedup import AlertState, Decision, Status
from receiver.alerts.matchers import Matcher
from receiver.alerts.wire import Alert, Notification
from receiver.evidence.records import ClaimedEvidence, EvidenceRecord, EvidenceRequest, EvidenceResult
from receiver.incidents.book import Changes, Incident
from receiver.incidents.lifecycle import IncidentStatus, TimelineEvent
from receiver.incidents.severity import Severity
from receiver.incidents.watchdog import Sightings
from receiver.notify.model import Delivery, NotificationRecord, State, Target
from receiver.notify.planning import Notices
from receiver.oncall.policies import Escalation
from receiver.playbooks.plan import PlannedStep
from receiver.playbooks.records import BreakerReset, RunRecord, RunSummary, StartedRun, StepRecord
from receiver.playbooks.runs import RunIntent, RunStatus


class StoreError(RuntimeError):
    """The store could not do what was asked (locked, full, broken, or moved on by another engine): retry later."""


class InUse(StoreError):
    """Another process serves this store already (a second daemon on one data directory): it may not start."""


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
    received_at: datetime | None = field(default=None, compare=False)
    """When its body was received (the time its news is recorded at)."""

    @property
    def notification_id(self) -> int | None:
        """The recorded notification: its inbox seq when it carried news, else None."""
        return self.seq if any(d.is_news for d in self.decisions) else None


@dataclass(frozen=True, slots=True)
class Batch:
    """What processing a run of inbox entries writes, as one transaction: all of it, or nothing.

    The store refuses it (``StoreError``) unless its cursor is still ``after`` and the entries come after it.
    """

    after: int
    """The cursor the entries were read after."""
    processed: Sequence[Processed]
    """Every entry, in inbox order: the cursor moves to the last one's seq."""
    alerts: Sequence[tuple[Decision, Alert]] = ()
    """Decisions that changed an alert's state, in order (a later one for the same alert wins)."""
    changes: Changes = field(default_factory=Changes)
    runs: Sequence[RunIntent] = ()
    evidence: Sequence[EvidenceRequest] = ()
    """Evidence the news asks for (kept once per incident, alert and episode)."""
    watchdog: Sightings | None = None
    """The watchdog's last two arrivals, when the batch carries a new one (None: unchanged)."""
    notices: Notices = field(default_factory=Notices)
    """The notifications the changes send, new channels of incidents, moved update deadlines."""

    @property
    def cursor(self) -> int:
        """Where the cursor stands once the batch is written."""
        return self.processed[-1].seq if self.processed else self.after


@dataclass(frozen=True, slots=True)
class Expiry:
    """Firing alerts that went silent, marked expired with what the incidents made of it, in one transaction.

    The store refuses it (``StoreError``) unless every one still fires and was last seen before ``cutoff``.
    """

    cutoff: datetime
    now: datetime
    fingerprints: Sequence[str]
    changes: Changes = field(default_factory=Changes)
    notices: Notices = field(default_factory=Notices)


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as listed: its dedup state and its latest labels and annotations."""

    state: AlertState
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    generator_url: str


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """A listing of alerts: the statuses (all when None), label matchers, and the page."""

    statuses: frozenset[Status] | None = None
    matchers: Sequence[Matcher] = ()
    limit: int | None = None
    """None: every match."""
    offset: int = 0


@dataclass(frozen=True, slots=True)
class AlertPage:
    """One page of a listing of alerts, most recently changed first (then by fingerprint)."""

    total: int
    """How many alerts match, on every page."""
    alerts: list[StoredAlert]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One entry of the ordered log of alert news (what processing recorded, once each)."""

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
class WorkingSet:
    """What the engine's incident book starts from: recent incidents, the numbering counters, the watchdog."""

    incidents: list[Incident]
    """Not resolved, or resolved since the time asked for; oldest first, with their members in order of joining."""
    numbers: Mapping[str, int]
    """The last incident number given on each day (``20261122``), incidents no longer recent included."""
    last_seq: int
    """The last incident seq given."""
    watchdog: Sightings = field(default_factory=Sightings)
    """The watchdog's last two arrivals, as the last batch that carried one wrote them (the dead man's switch)."""
    targets: Sequence[tuple[str, Target, str]] = ()
    """The channels of these incidents: (incident, target, route)."""
    due: Mapping[str, datetime] = field(default_factory=dict)
    """The next status update deadline of these incidents that have one."""
    escalations: Sequence[Escalation] = ()
    """Where the escalations of these incidents stand (``receiver.notify.escalation``)."""


class InboxStore(Protocol):
    """The durable, ordered inbox of webhook bodies and how far processing got."""

    async def accept(self, body: bytes, received_at: datetime) -> int:
        """Append a webhook body to the inbox, durably; its sequence number (increasing)."""
        ...

    async def inbox(self, after: int, limit: int) -> list[InboxEntry]:
        """Inbox entries with ``seq`` above ``after``, oldest first, as accepted."""
        ...

    async def cursor(self) -> int:
        """The sequence number of the last processed inbox entry (0 before any)."""
        ...

    async def backlog(self) -> int:
        """How many inbox entries wait for processing (after the cursor)."""
        ...

    async def oldest_unprocessed(self) -> datetime | None:
        """When the oldest inbox entry after the cursor was received; None when nothing waits."""
        ...

    async def prune_inbox(self, before: datetime) -> int:
        """Forget processed inbox entries received before ``before``; how many."""
        ...


class AlertStore(Protocol):
    """Alert state: what dedup decides from, and what the API lists."""

    async def alert_states(self, fingerprints: Collection[str]) -> dict[str, AlertState]:
        """The known states of these alerts (those never seen, or forgotten, are absent)."""
        ...

    async def alerts(self, query: AlertQuery) -> AlertPage:
        """Alerts matching ``query``, most recently changed first, then by fingerprint; one page and the total."""
        ...

    async def count_alerts(self) -> Mapping[Status, int]:
        """How many alerts are in each status."""
        ...

    async def alert_firing(self, fingerprint: str) -> bool:
        """Whether the alert fires now."""
        ...

    async def silent(self, cutoff: datetime) -> list[str]:
        """Firing alerts last seen before ``cutoff`` (to expire), in a stable order."""
        ...

    async def events(self, after: int = 0, limit: int = 1000) -> list[AlertEvent]:
        """Alert news with ``seq`` above ``after``, oldest first: each piece recorded once."""
        ...

    async def prune_alerts(self, before: datetime) -> int:
        """Forget resolved and expired alerts unchanged since ``before``, and news older than it; how many alerts."""
        ...


class IncidentStore(Protocol):
    """Incidents, their members (keyed by incident id and fingerprint) and their timelines."""

    async def record(self, changes: Changes, runs: Sequence[RunIntent] = (), notices: Notices | None = None) -> None:
        """Write incident changes (a tick, a person's action), runs and notifications in a transaction of their own."""
        ...

    async def load_incidents(self, since: datetime) -> WorkingSet:
        """Incidents not resolved or resolved since ``since``, with their members, channels, deadlines, counters."""
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


class RunStore(Protocol):
    """Playbook runs: pending until judged, then started, finished, blocked or rejected."""

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

    async def render_step(self, run_id: int, step: PlannedStep) -> None:
        """A deferred step of a running run was rendered: it replaces the planned step of its name."""
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


class EvidenceStore(Protocol):
    """Evidence requests (written by ``ProcessingStore.process`` with the news) and their results."""

    async def release_evidence(self) -> int:
        """Requests left claimed by an engine that stopped are pending again; how many."""
        ...

    async def claim_evidence(self, limit: int) -> list[ClaimedEvidence]:
        """Claim up to ``limit`` pending requests, oldest first."""
        ...

    async def store_evidence(self, result: EvidenceResult) -> None:
        """Store a capture's result on its request, with a line in its incident's timeline, in one transaction."""
        ...

    async def evidence(self, incident: str) -> list[EvidenceRecord]:
        """An incident's evidence requests and results, in order of request."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """A delivery attempt's outcome, as the sender records it (with a line in the incident's timeline)."""

    delivery: Delivery
    state: State
    at: datetime
    text: str = ""
    """The timeline's line (empty: none, for a retry not worth one)."""
    next_attempt_at: datetime | None = None
    """When a temporary failure is tried again (``state`` pending)."""
    reason: str | None = None
    """A failure's ``receiver.notify.model.Reason``."""
    error: str = ""
    provider_id: str = ""
    thread: Mapping[str, str] | None = None
    """Kept for the next deliveries to the same incident and target (merged into what is kept)."""
    resumed: bool = False
    """It may have reached the provider (no answer came): the next attempt reconciles first."""


class OutboxStore(Protocol):
    """Notifications: claimed when due, in order per incident and target; outcomes; listings."""

    async def claim_notifications(self, now: datetime, limit: int) -> list[Delivery]:
        """Claim up to ``limit`` due rows (state ``sending``, one more attempt), none behind an open earlier one."""
        ...

    async def defer_notifications(self, ids: Sequence[int], until: datetime, *, resumed: bool = False) -> None:
        """Claimed rows back to pending until ``until`` (a rate pacing: not an attempt)."""
        ...

    async def notify_state(self, incident: str) -> tuple[list[tuple[str, Target, str]], dict[str, datetime]]:
        """One incident's channels (incident, target, route) and update deadline (an old one read back)."""
        ...

    async def stuck_notifications(self) -> list[Delivery]:
        """Rows left ``sending`` by an engine that stopped."""
        ...

    async def finish_notification(self, outcome: Outcome) -> None:
        """Record an attempt's outcome, the target's kept state and the timeline's line, in one transaction."""
        ...

    async def next_notification_due(self) -> datetime | None:
        """When the earliest row that can be claimed is due (None: none)."""
        ...

    async def prune_notifications(self, before: datetime) -> int:
        """Forget rows that ended and were written before ``before``; how many."""
        ...

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """Rows pending or sending, and when the oldest was written."""
        ...

    async def escalations_active(self) -> int:
        """How many incidents escalate now (a step or its wait still to come)."""
        ...

    async def escalation_of(self, incident: str) -> Escalation | None:
        """Where ``incident``'s escalation stands (None: it does not escalate)."""
        ...

    async def notifications(
        self, *, incident: str | None = None, state: State | None = None, before: int | None = None, limit: int = 100
    ) -> list[NotificationRecord]:
        """Rows newest first, filtered, a page at a time (ids below ``before``)."""
        ...


class ProcessingStore(Protocol):
    """The engine's transactions across concepts: values it decided, written whole or not at all."""

    async def process(self, batch: Batch) -> None:
        """Write a processed batch and move the cursor to ``batch.cursor``; StoreError if the cursor moved on."""
        ...

    async def expire(self, expiry: Expiry) -> None:
        """Mark the alerts expired (with a piece of news each) and write the incident changes."""
        ...


class HealthStore(Protocol):
    """Whether the store takes writes now."""

    async def ping(self) -> None:
        """Prove the store is writable now; raise StoreError when it is not."""
        ...


class Store(
    InboxStore, AlertStore, IncidentStore, RunStore, EvidenceStore, OutboxStore, ProcessingStore, HealthStore, Protocol
):
    """Durable state, every concept. Every method either completes or changes nothing."""

    async def close(self) -> None:
        """Finish what is running and release the database."""
        ...


class Backend(Store, Protocol):
    """A store as ``receiver.store.backends`` makes it: ``open`` before use."""

    async def open(self) -> None:
        """Open (creating or upgrading its schema when needed) the database."""
        ...


async def watchdog_last_seen(store: AlertStore, matchers: Sequence[Matcher]) -> datetime | None:
    """The last arrival of the alerts matching ``matchers`` (the dead man's switch), or None if none is stored."""
    page = await store.alerts(AlertQuery(matchers=matchers))
    return max((a.state.last_seen for a in page.alerts), default=None)
