"""The embedded SQLite store: two database files, two writer threads, one reader.

Webhook bodies go to the inbox database, written by their own thread, so an
accept never waits behind processing. Everything derived from them (alert
state, events, the processing cursor) lives in the state database, written
by another thread. SQLite takes one writer per database, so the two never
contend; their SQL runs in parallel, outside the GIL. Reads use a third
connection on a third thread, with the inbox attached; WAL lets readers and
writers overlap. Each writer checkpoints its own write-ahead log (see
``sqlite_writer``), so the logs stay short. The SQL lives in ``sqlite_tables``
(inbox, alerts, news), ``sqlite_incidents``, ``sqlite_runs``, ``sqlite_evidence``,
``sqlite_watchdog`` and ``sqlite_listing`` (the alerts API's filtered pages). Row ids (an alert's, a
member's) stay in here: the engine names alerts by fingerprint and members by
incident and fingerprint.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

from receiver.alerts.dedup import AlertState, Status
from receiver.evidence.records import ClaimedEvidence, EvidenceRecord, EvidenceResult
from receiver.incidents.book import Changes, Incident
from receiver.incidents.lifecycle import TimelineEvent
from receiver.incidents.severity import Severity
from receiver.notify.model import Delivery, NotificationRecord, Reason, State
from receiver.notify.planning import Notices
from receiver.oncall.policies import Escalation
from receiver.playbooks.plan import PlannedStep
from receiver.playbooks.records import BreakerReset, RunRecord, RunSummary, StartedRun, StepRecord
from receiver.playbooks.runs import RunIntent, RunStatus
from receiver.store import (
    AlertEvent,
    AlertPage,
    AlertQuery,
    Batch,
    Expiry,
    InboxEntry,
    IncidentQuery,
    Outcome,
    StoredAlert,
    StoreError,
    WorkingSet,
)
from receiver.store import sqlite_escalations as escalation_tables
from receiver.store import sqlite_evidence as evidence_tables
from receiver.store import sqlite_incidents as incident_tables
from receiver.store import sqlite_listing as listing
from receiver.store import sqlite_outbox as outbox_tables
from receiver.store import sqlite_runs as run_tables
from receiver.store import sqlite_tables as tables
from receiver.store import sqlite_watchdog as watchdog_tables
from receiver.store.sqlite_values import micros
from receiver.store.sqlite_writer import OnCommit, Writer

T = TypeVar("T")
log = logging.getLogger(__name__)
Role = Literal["all", "web", "engine"]
"""Which process this store serves: one doing everything, the web process (it appends to the
inbox), or the engine process (it writes the state and never the inbox)."""
INBOX_CHECKPOINT_SECONDS = 0.01
"""How often the inbox's checkpointer thread runs. Beside the writer, so commits never wait for it;
often, so it catches up between two commits and the log starts over (half-peak p99 13-16 ms, where
checkpoints in the writer thread every 0.05 s made commits wait: 19-31 ms)."""
INBOX_LOG_LIMIT_FRAMES = 16_384
"""A log that grew past this many pages (64 MiB) despite the checkpointer is checkpointed by the
writer thread itself, which always starts it over."""
STATE_CHECKPOINT_SECONDS = 1.0
"""Pages rewritten by several batches are flushed once per checkpoint: with alerts keyed by
fingerprint the engine wrote 18 KiB per notification at 1 s against 26 KiB at 0.2 s. With alerts
keyed by id (5 KiB) the two intervals gave the same half-peak p99 over four runs each."""
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
"""A write-ahead log that grew past this (a burst) is truncated back to it once checkpointed."""


def ignore_commit(seconds: float, size: int) -> None:
    """Told of an inbox commit, it does nothing with it."""
    return None


def inbox_path(path: Path) -> Path:
    """The inbox database that goes with the state database at ``path``."""
    return path.with_name(f"{path.stem}-inbox{path.suffix}")


class SQLiteStore:
    """Every protocol of ``receiver.store`` in two SQLite files; ``await open()`` before use, ``close()`` after."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["full", "normal"] = "full",
        busy_timeout: timedelta = timedelta(seconds=5),
        max_batch: int = 512,
        on_commit: OnCommit = ignore_commit,
        role: Role = "all",
    ) -> None:
        self._path = path
        self._role = role
        self._inbox_path = inbox_path(path)
        self._synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout / timedelta(milliseconds=1))
        self._inbox = Writer(
            str(self._inbox_path),
            self._connect_inbox,
            max_batch=max_batch,
            on_commit=on_commit,
            checkpoint_seconds=None,  # the checkpointer thread does it, or asks for it
        )
        self._state = Writer(
            str(path),
            self._connect_state,
            max_batch=max_batch,
            on_commit=ignore_commit,
            checkpoint_seconds=STATE_CHECKPOINT_SECONDS,
        )
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._reader: sqlite3.Connection | None = None
        self._ids = tables.AlertIds()
        self._members = incident_tables.MemberIds()
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()

    async def open(self) -> None:
        """Open (creating and migrating when needed) both databases."""
        try:
            if self._role != "engine":
                await self._inbox.start()
            await self._state.start()
            if self._role != "engine":
                await self._continue_after_cursor()
            self._reader = await self._on_reader(self._connect_reader)
            if self._role != "engine":
                self._checkpointer = threading.Thread(target=self._checkpoint_inbox, name="inbox-checkpoint")
                self._checkpointer.start()
        except BaseException:
            await self.close()
            raise

    async def _continue_after_cursor(self) -> None:
        """Never number a new notification at or below the state's cursor (see ``tables.continue_after``)."""
        cursor = await self._state.run(tables.cursor)
        last = await self._inbox.run(lambda db: tables.continue_after(db, cursor))
        if last is not None:
            log.error(
                "the inbox database ends before what the state processed: it was deleted or replaced by an older"
                " copy; notifications it held that were not processed are lost, new ones are numbered after the"
                " cursor",
                extra={"inbox": str(self._inbox_path), "inbox_last_seq": last, "cursor": cursor},
            )

    async def accept(self, body: bytes, received_at: datetime) -> int:
        return await self._inbox.accept(body, received_at)

    async def inbox(self, after: int, limit: int) -> list[InboxEntry]:
        return await self._read(lambda db: tables.inbox(db, after, limit))

    async def cursor(self) -> int:
        return await self._read(tables.cursor)

    async def backlog(self) -> int:
        return await self._read(tables.backlog)

    async def oldest_unprocessed(self) -> datetime | None:
        return await self._read(tables.oldest_unprocessed)

    async def alert_states(self, fingerprints: Collection[str]) -> dict[str, AlertState]:
        return await self._state.run(lambda db: tables.load_states(db, fingerprints, self._ids))

    async def process(self, batch: Batch) -> None:
        await self._state.run(lambda db: self._process(db, batch))

    def _process(self, db: sqlite3.Connection, batch: Batch) -> None:
        """On the state writer thread, the only one that touches ``self._ids``."""

        def work(db: sqlite3.Connection) -> dict[str, int]:
            added = tables.write_batch(db, batch, self._ids)
            incident_tables.write(db, batch.changes, self._members)
            run_tables.write(db, batch.runs)
            evidence_tables.write(db, batch.evidence)
            watchdog_tables.write(db, batch.watchdog)
            _write_notices(db, batch.notices)
            return added

        self._ids.add(self._incidents_transaction(db, work))  # only once committed: a rolled-back batch leaves them

    def _incidents_transaction(self, db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        """A state transaction that writes incidents (on the writer thread): if it fails, member rows are read anew."""
        try:
            return tables.transaction(db, work)
        except BaseException:
            self._members.forget()
            raise

    async def record(self, changes: Changes, runs: Sequence[RunIntent] = (), notices: Notices | None = None) -> None:
        if changes or runs or notices:
            await self._state.run(
                lambda db: self._incidents_transaction(db, lambda db: self._record(db, changes, runs, notices))
            )

    def _record(
        self, db: sqlite3.Connection, changes: Changes, runs: Sequence[RunIntent], notices: Notices | None
    ) -> None:
        incident_tables.write(db, changes, self._members)
        run_tables.write(db, runs)
        if notices:
            _write_notices(db, notices)

    async def load_incidents(self, since: datetime) -> WorkingSet:
        def read(db: sqlite3.Connection) -> WorkingSet:
            loaded = incident_tables.load(db, since)
            ids = [i.id for i in loaded.incidents]
            targets, due = outbox_tables.load(db, ids)
            escalations = escalation_tables.load(db, ids)
            watchdog = watchdog_tables.load(db)
            return replace(loaded, watchdog=watchdog, targets=tuple(targets), due=due, escalations=tuple(escalations))

        return await self._read(read)

    async def incidents(self, query: IncidentQuery) -> list[Incident]:
        return await self._read(lambda db: incident_tables.listing(db, query))

    async def incident(self, id: str, timeline_limit: int) -> tuple[Incident, list[TimelineEvent]] | None:
        def read(db: sqlite3.Connection) -> tuple[Incident, list[TimelineEvent]] | None:
            db.execute("BEGIN")  # one snapshot for the incident and its timeline
            try:
                found = incident_tables.one(db, id)
                return None if found is None else (found, incident_tables.timeline(db, id, timeline_limit))
            finally:
                db.execute("COMMIT")

        return await self._read(read)

    async def count_open_incidents(self) -> Mapping[Severity, int]:
        return await self._read(incident_tables.count_open)

    async def prune_inbox(self, before: datetime) -> int:
        processed = await self.cursor()
        cutoff = micros(before)
        return await self._inbox.run(
            lambda db: tables.transaction(db, lambda db: tables.prune_inbox(db, cutoff, processed))
        )

    async def alerts(self, query: AlertQuery) -> AlertPage:
        return await self._read(lambda db: listing.page(db, query))

    async def list_alerts(self, statuses: frozenset[Status] | None = None) -> list[StoredAlert]:
        """Every alert with one of ``statuses`` (all when None), most recently changed first (tests, tools)."""
        return (await self.alerts(AlertQuery(statuses))).alerts

    async def count_alerts(self) -> Mapping[Status, int]:
        return await self._read(tables.count_alerts)

    async def prune_alerts(self, before: datetime) -> int:
        return await self._state.run(lambda db: self._prune_alerts(db, micros(before)))

    def _prune_alerts(self, db: sqlite3.Connection, before: int) -> int:
        """On the state writer thread, the only one that touches ``self._ids``."""
        deleted = tables.transaction(db, lambda db: tables.prune_alerts(db, before))
        self._ids.forget(deleted)
        return len(deleted)

    async def silent(self, cutoff: datetime) -> list[str]:
        return await self._read(lambda db: tables.silent(db, micros(cutoff)))

    async def expire(self, expiry: Expiry) -> None:
        def work(db: sqlite3.Connection) -> None:
            tables.expire(db, expiry)
            incident_tables.write(db, expiry.changes, self._members)
            _write_notices(db, expiry.notices)

        if expiry.fingerprints:
            await self._state.run(lambda db: self._incidents_transaction(db, work))

    async def events(self, after: int = 0, limit: int = 1000) -> list[AlertEvent]:
        return await self._read(lambda db: tables.events(db, after, limit))

    async def pending_runs(self, limit: int = 100) -> list[RunRecord]:
        return await self._state.run(lambda db: run_tables.pending(db, limit))

    async def run_history(self, since: datetime) -> list[StartedRun]:
        return await self._state.run(lambda db: run_tables.history(db, since))

    async def failures_in_a_row(self, playbook: str, window: int) -> int:
        return await self._state.run(lambda db: run_tables.failures_in_a_row(db, playbook, window))

    async def await_approval(self, run_id: int, reason: str) -> None:
        await self._write_runs(lambda db: run_tables.await_approval(db, run_id, reason))

    async def start_run(self, run_id: int, at: datetime, *, dry_run: bool, reason: str) -> None:
        await self._write_runs(lambda db: run_tables.start(db, run_id, at, dry_run, reason))

    async def add_step(self, run_id: int, step: StepRecord) -> None:
        await self._write_runs(lambda db: run_tables.add_step(db, run_id, step))

    async def render_step(self, run_id: int, step: PlannedStep) -> None:
        await self._write_runs(lambda db: run_tables.render_step(db, run_id, step))

    async def finish_run(self, run_id: int, status: RunStatus, reason: str, at: datetime) -> None:
        await self._write_runs(lambda db: run_tables.finish(db, run_id, status, reason, at))

    async def interrupt_runs(self, now: datetime) -> list[RunSummary]:
        return await self._write_runs(lambda db: run_tables.interrupt(db, now))

    async def runs(
        self,
        *,
        status: RunStatus | None = None,
        playbook: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[RunSummary]:
        return await self._read(lambda db: run_tables.listing(db, status, playbook, before, limit))

    async def run(self, run_id: int) -> RunRecord | None:
        return await self._read(lambda db: run_tables.one(db, run_id))

    async def expire_approvals(self, before: datetime, now: datetime, reason: str) -> list[RunSummary]:
        return await self._write_runs(lambda db: run_tables.expire_approvals(db, before, now, reason))

    async def block_runs(self, blocked: Sequence[tuple[int, str]], now: datetime) -> None:
        if blocked:
            await self._write_runs(lambda db: run_tables.block(db, blocked, now))

    async def reset_breaker(self, reset: BreakerReset) -> None:
        await self._write_runs(lambda db: run_tables.reset_breaker(db, reset))

    async def _write_runs(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in a transaction of its own on the state writer."""
        return await self._state.run(lambda db: tables.transaction(db, work))

    async def release_evidence(self) -> int:
        return await self._write_runs(evidence_tables.release)

    async def claim_evidence(self, limit: int) -> list[ClaimedEvidence]:
        return await self._write_runs(lambda db: evidence_tables.claim(db, limit))

    async def store_evidence(self, result: EvidenceResult) -> None:
        await self._write_runs(lambda db: evidence_tables.finish(db, result))

    async def evidence(self, incident: str) -> list[EvidenceRecord]:
        return await self._read(lambda db: evidence_tables.of_incident(db, incident))

    async def claim_notifications(self, now: datetime, limit: int) -> list[Delivery]:
        return await self._write_runs(lambda db: outbox_tables.claim(db, now, limit))

    async def defer_notifications(self, ids: Sequence[int], until: datetime, *, resumed: bool = False) -> None:
        if ids:
            await self._write_runs(lambda db: outbox_tables.defer(db, ids, until, resumed=resumed))

    async def notify_state(self, incident: str) -> outbox_tables.Kept:
        return await self._read(lambda db: outbox_tables.load(db, [incident]))

    async def stuck_notifications(self) -> list[Delivery]:
        return await self._read(outbox_tables.stuck)

    async def finish_notification(self, outcome: Outcome) -> None:
        d = outcome.delivery
        done = outbox_tables.Finished(
            d.id,
            d.incident,
            outcome.state,
            outcome.at,
            outcome.text,
            outcome.next_attempt_at,
            Reason(outcome.reason) if outcome.reason else None,
            outcome.error,
            outcome.provider_id,
            d.target,
            outcome.thread,
            outcome.resumed,
        )
        await self._write_runs(lambda db: outbox_tables.finish(db, done))

    async def prune_notifications(self, before: datetime) -> int:
        return await self._write_runs(lambda db: outbox_tables.prune(db, before))

    async def next_notification_due(self) -> datetime | None:
        return await self._read(outbox_tables.next_due)

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        return await self._read(outbox_tables.backlog)

    async def escalations_active(self) -> int:
        return await self._read(escalation_tables.active)

    async def escalation_of(self, incident: str) -> Escalation | None:
        found = await self._read(lambda db: escalation_tables.load(db, [incident]))
        return found[0] if found else None

    async def notifications(
        self, *, incident: str | None = None, state: State | None = None, before: int | None = None, limit: int = 100
    ) -> list[NotificationRecord]:
        return await self._read(lambda db: outbox_tables.listing(db, incident, state, before, limit))

    async def alert_firing(self, fingerprint: str) -> bool:
        return await self._state.run(lambda db: self._alert_firing(db, fingerprint))

    def _alert_firing(self, db: sqlite3.Connection, fingerprint: str) -> bool:
        """On the state writer thread, the only one that touches ``self._ids``."""
        row_id = self._ids.current(db).get(fingerprint)
        if row_id is None:
            return False
        row = db.execute("SELECT status FROM alerts WHERE id = ?", (row_id,)).fetchone()
        return row is not None and row[0] == "firing"

    async def checkpoint(self) -> None:
        """Copy both write-ahead logs into their databases now and empty them (benchmarks: start level)."""
        for writer in (self._inbox, self._state) if self._role != "engine" else (self._state,):
            await writer.run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())

    async def ping(self) -> None:
        now = datetime.now(UTC)
        for writer in (self._inbox, self._state) if self._role != "engine" else (self._state,):
            await writer.run(lambda db: tables.transaction(db, lambda db: tables.heartbeat(db, now)))

    async def close(self) -> None:
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        await self._inbox.stop()
        await self._state.stop()
        if self._reader is not None:
            await self._on_reader(self._reader.close)
            self._reader = None
        self._reader_thread.shutdown(wait=True)

    def _connect(self, path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        return db

    def _connect_inbox(self) -> sqlite3.Connection:
        return self._connect_writer(self._inbox_path, tables.migrate_inbox, self._synchronous)

    def _connect_state(self) -> sqlite3.Connection:
        # Derived state needs no fsync of its own: the inbox it comes from was synced when
        # accepted, and the cursor moves in the same transaction as the state, so a power
        # loss can only roll both back together, and the entries are processed again.
        return self._connect_writer(self._path, tables.migrate_state, "normal")

    def _connect_writer(
        self, path: Path, migrate: Callable[[sqlite3.Connection], None], synchronous: str
    ) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect(path)
        try:
            if db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise StoreError(f"{path}: cannot switch the database to WAL mode")
            db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            db.execute("PRAGMA wal_autocheckpoint = 0")  # the writer thread does it, once its answers are out
            db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            migrate(db)
        except sqlite3.Error as err:
            db.close()
            raise StoreError(f"{path}: {err}") from err
        except BaseException:
            db.close()
            raise
        return db

    def _connect_reader(self) -> sqlite3.Connection:
        db = self._connect(self._path)
        db.execute("ATTACH DATABASE ? AS " + tables.INBOX_ALIAS, (str(self._inbox_path),))
        return db

    def _checkpoint_inbox(self) -> None:
        """Checkpoint the inbox's log beside its writer; ask the writer when the log outgrew the limit."""
        db = self._connect(self._inbox_path)
        try:
            while not self._stop_checkpoints.wait(INBOX_CHECKPOINT_SECONDS):
                try:
                    _, log_frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as err:
                    log.warning("inbox checkpoint failed", extra={"error": str(err)})
                    continue
                if log_frames > INBOX_LOG_LIMIT_FRAMES:
                    self._inbox.request_checkpoint()
        finally:
            db.close()

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._reader
        if db is None:
            raise StoreError("the store is closed")
        return await self._on_reader(lambda: work(db))

    async def _on_reader(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader_thread, fn)
        except sqlite3.Error as err:
            raise StoreError(f"{self._path}: {err}") from err


def _write_notices(db: sqlite3.Connection, notices: Notices) -> None:
    """What a change tells people and where its escalations stand, in the change's transaction."""
    outbox_tables.write(db, notices)
    escalation_tables.write(db, notices)
