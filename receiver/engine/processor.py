"""The processor: turns accepted webhook bodies into alert state, in order.

The webhook only appends bodies to the store's inbox. The processor takes
the entries after the store's cursor, in order, reads the states of the
alerts they name, decides (dedup, then the incident book and the playbooks:
pure code, outside any transaction), and hands the store the values to
write: one ``Batch`` (alert states, news, incident changes, run intents, the
new cursor), written in one transaction that checks the cursor first. It runs in the
engine process (``receiver.engine``), which reads every entry back from the
inbox; run inline (tests), the webhook hands over each notification it has
just decoded and committed, so nothing is decoded twice. Nothing accepted is
lost, nothing is processed twice, and since dedup decides with each body's
receipt time, processing later changes nothing. What each step counted goes
to ``report`` as a ``Tally``, for whichever process exports the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from receiver.alerts.dedup import DedupPolicy, Outcome, decide, expiry_cutoff
from receiver.alerts.wire import InvalidNotification, Notification, Valid, decode
from receiver.clock import Clock, utc_now
from receiver.engine.batch import decide_all, fingerprints
from receiver.evidence.records import EvidenceRequest
from receiver.evidence.requests import requests_for
from receiver.incidents.book import Book, Changes, UnknownIncident
from receiver.incidents.lifecycle import EventKind, IncidentStatus, Signal
from receiver.incidents.watchdog import Sightings, armed, arrived
from receiver.metrics import Tally
from receiver.notify.escalation import ACTOR as ESCALATION_ACTOR
from receiver.notify.escalation import Escalator, Fired
from receiver.notify.planning import Notices, Planner
from receiver.playbooks.plan import AlertFacts
from receiver.playbooks.remediation import Remediation
from receiver.playbooks.runs import RunIntent
from receiver.store import (
    AlertStore,
    Batch,
    Expiry,
    InboxEntry,
    InboxStore,
    IncidentStore,
    OutboxStore,
    Processed,
    ProcessingStore,
    StoreError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_SECONDS = 1.0
HANDOFF_LIMIT = 10_000
"""Most decoded notifications kept in memory for the processor; the rest wait in the inbox."""
Report = Callable[[int, Tally], None]
"""Told, after each step, the cursor and what the step counted."""
Entries = list[tuple[InboxEntry, Notification | None]]


class ProcessorStore(InboxStore, AlertStore, IncidentStore, OutboxStore, ProcessingStore, Protocol):
    """What the processor needs of the store: the inbox, alert states, incidents, and its transactions."""


class Processor:
    """Consumes the inbox, one batch per transaction."""

    def __init__(
        self,
        store: ProcessorStore,
        *,
        policy: DedupPolicy,
        report: Report,
        batch_size: int = 512,
        linger: float = 0.0,
        book: Book | None = None,
        clock: Clock = utc_now,
        remediation: Remediation | None = None,
        evidence: int = 0,
        planner: Planner | None = None,
        escalator: Escalator | None = None,
    ) -> None:
        """``linger``: seconds to let entries gather after a partial batch (fewer, larger transactions).

        ``book``: the incidents the news goes to (None: alerts only, no incidents).
        ``evidence``: how many alerts of an incident that opens ask for evidence (0: evidence is off).
        ``planner``: who hears of incident changes (None: nobody; the outbox stays empty).
        ``escalator``: who is paged until someone acknowledges (None: nobody is; needs a planner).
        """
        self._escalator = escalator if planner is not None else None
        self.paging = asyncio.Event()
        """Set when an escalation starts or moves (the escalation loop looks at its deadlines again)."""
        self._evidence = evidence
        self._planner = planner
        self._store = store
        self._book = book
        self._remediation = remediation
        self._book_loaded = False
        self._clock = clock
        self._policy = policy
        self._decide = functools.partial(decide, policy=policy)
        self._report = report
        self._batch_size = batch_size
        self._linger = linger
        self._wake = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()
        self._handed: dict[int, tuple[InboxEntry, Valid]] = {}
        self._ahead: tuple[int, asyncio.Task[Entries]] | None = None
        """The batch after a seq, being read and decoded while the one before it is written."""
        self.cursor = 0
        """The last inbox seq processed."""
        self._sightings = Sightings()
        """The watchdog's last arrivals, as the store has them (loaded with the book, then kept with each batch)."""

    def offer(self, entry: InboxEntry, valid: Valid) -> None:
        """Say that ``entry`` is committed to the inbox, and what its body validated as."""
        if entry.seq > self.cursor and len(self._handed) < HANDOFF_LIMIT:
            self._handed[entry.seq] = (entry, valid)
        self._wake.set()

    def wake(self) -> None:
        """Say that the inbox has grown (read it back: nothing was handed over)."""
        self._wake.set()

    async def run(self) -> None:
        """Process whatever arrives, until cancelled."""
        self.cursor = await self._store.cursor()
        try:
            await self._loop()
        finally:
            self._drop_ahead()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                processed = await self.step()
            except Exception as err:  # a store fault or a bug: say so, and keep the daemon processing
                log.error(
                    "processing failed; retrying",
                    exc_info=not isinstance(err, StoreError),
                    extra={"error": str(err), "cursor": self.cursor},
                )
                await asyncio.sleep(RETRY_SECONDS)
                with contextlib.suppress(StoreError):
                    self.cursor = await self._store.cursor()
                continue
            if processed >= self._batch_size:  # more is waiting: first let what the batch woke take its turn,
                await asyncio.sleep(0)  # so the steps it made due fire before the next batch, not after it
                continue
            if not processed:  # idle: what wakes it is taken at once (a lone alert waits for no linger)
                await self._wake.wait()
                continue
            await asyncio.sleep(self._linger)  # busy: after a partial batch, let the next one gather

    async def step(self) -> int:
        """Process the next batch of the inbox; how many entries it held."""
        async with self._one_at_a_time:
            await self._ensure_book()
            entries = self._take_handed() or await self._read_ahead() or await self._read_inbox()
            if not entries:
                return 0
            last = entries[-1][0].seq
            if len(entries) == self._batch_size and not self._handed:  # more waits: read and decode it meanwhile
                self._ahead = (last, asyncio.create_task(self._read(after=last)))
            batch = await self._decided(entries)
            await self._guarded(self._store.process(batch))
            self.cursor = last
            self._sighted(batch.watchdog)
            self._paged(batch.notices)
        tally = Tally() if self._book is None else self._tally(batch.changes)
        for item in batch.processed:
            tally.count(item.notification, item.decisions)
            _log(item)
        self._report(self.cursor, tally)
        return len(entries)

    async def expire(self, now: datetime) -> list[str]:
        """Expire the firing alerts silent for longer than the policy allows; their fingerprints."""
        async with self._one_at_a_time:
            await self._ensure_book()
            cutoff = expiry_cutoff(now, self._policy)
            expired = await self._store.silent(cutoff)
            if not expired:
                return []
            changes = self._booked(lambda book: self._follow_expired(book, now, expired))
            notices = self._booked(lambda book: self._notices(book, changes or Changes(), None, None)) or Notices()
            await self._guarded(self._store.expire(Expiry(cutoff, now, expired, changes or Changes(), notices)))
            self._paged(notices)
        for fingerprint in expired:
            log.info("alert expired: no update for %s", self._policy.expire_after, extra={"fingerprint": fingerprint})
        tally = Tally() if changes is None else Tally.of_incidents(changes)
        tally.expired = len(expired)
        self._report(self.cursor, tally)
        return expired

    async def tick(self, now: datetime) -> None:
        """Resolve incidents quiet for long enough; let the book forget old resolved ones."""
        if self._book is not None:  # without a book (alerts only) there is nothing to resolve
            await self._change(lambda book: book.tick(now), remind=now)

    async def escalate(self, now: datetime) -> int:
        """Fire the escalation steps due at ``now`` (each with its pages and timeline line); how many fired."""
        escalator = self._escalator
        if escalator is None or self._book is None:
            return 0
        fired: list[Fired] = []

        def change(book: Book) -> Changes:
            for incident_id in escalator.due(now):
                fired.append(escalator.fire(book.incidents.get(incident_id), incident_id, now))
            lines = [(f.incident, f.text) for f in fired if f.text]
            return book.annotate(lines, now, ESCALATION_ACTOR, EventKind.ESCALATION)

        await self._change(change, paging=fired)
        tally = Tally(steps=[(f.policy, f.step) for f in fired if f.step], nobody=[f.policy for f in fired if f.nobody])
        if tally.steps or tally.nobody:
            self._report(self.cursor, tally)
        return sum(1 for f in fired if f.step)

    @property
    def escalates(self) -> bool:
        """Whether incidents escalate (policies and channels are configured)."""
        return self._escalator is not None

    def next_escalation(self) -> datetime | None:
        """When the earliest escalation step is due (None: nothing escalates)."""
        return None if self._escalator is None else self._escalator.next_due()

    async def watch(self, now: datetime) -> None:
        """The dead man's switch: the watchdog's arrivals (as stored) against ``now``.

        Arrivals are known up to the oldest notification not processed yet (one accepted while the engine
        was down may carry the watchdog): the alarm waits for it rather than raising and clearing.
        """
        if self._book is None:
            return
        pending = await self._store.oldest_unprocessed()
        await self._change(lambda book: book.watch(self._sightings, now, heard_until=pending))

    def _arrivals(self, processed: Sequence[Processed]) -> Sightings | None:
        """The watchdog's arrivals after a batch, if it carries a new one (to write with it); else None."""
        if self._book is None:
            return None
        updates = (
            (alert, decision.state)
            for item in processed
            if item.notification is not None
            for alert, decision in zip(item.notification.alerts, item.decisions, strict=True)
        )
        sightings = arrived(self._sightings, updates, self._book.policy.watchdog)
        return None if sightings == self._sightings else sightings

    def _sighted(self, sightings: Sightings | None) -> None:
        """A batch's arrivals are written: keep them, and say when they are too far apart to arm the switch."""
        if sightings is None or self._book is None:
            return
        policy = self._book.policy.watchdog
        gap, before, self._sightings = sightings.gap(), self._sightings.gap(), sightings
        if gap is not None and gap != before and not armed(sightings, policy) and policy.enabled:
            log.warning(
                "the watchdog arrives %s apart, not within incidents.watchdog.missing_after (%s): the dead man's"
                " switch is not armed; route it to the receiver with a short repeat_interval (README)",
                gap,
                policy.missing_after,
            )

    async def acknowledge(self, id: str, actor: str, reason: str) -> None:
        """A person acknowledges an incident. UnknownIncident, InvalidTransition, StoreError."""
        await self._transition(id, IncidentStatus.ACKNOWLEDGED, actor, reason or "acknowledged")

    async def mitigate(self, id: str, actor: str, reason: str) -> None:
        """A person says an incident is mitigated."""
        await self._transition(id, IncidentStatus.MITIGATED, actor, reason or "mitigated")

    async def resolve(self, id: str, actor: str, reason: str) -> None:
        """A person resolves an incident."""
        await self._transition(id, IncidentStatus.RESOLVED, actor, reason or "resolved")

    async def note(self, id: str, actor: str, text: str) -> None:
        """A person adds a note to an incident's timeline."""
        await self._change(lambda book: book.note(id, text, self._clock(), actor), id)

    async def update(self, id: str, actor: str, text: str) -> None:
        """A person posts a status update: every channel of the incident hears it; the cadence starts over."""
        now = self._clock()
        await self._change(lambda book: book.note(id, text, now, actor, EventKind.NOTE, Signal.STATUS_UPDATE), id)

    async def remediation(self, id: str, playbook: str, text: str, signal: Signal | None = None) -> None:
        """A playbook run of the incident started, ended or was held: its timeline says so.

        ``signal``: what people are told of it (a run blocked, awaiting approval, failed), if anything.
        """
        now = self._clock()
        actor = f"playbook {playbook}"
        await self._change(lambda book: book.note(id, text, now, actor, EventKind.REMEDIATION, signal), id)

    async def notify(self, id: str, playbook: str, channel: str, text: str) -> int:
        """A playbook's ``notify`` step: ``text`` to ``channel`` (``default``: every channel of the incident).

        How many notifications were written (0: no such channel, or none of the incident's takes steps).
        """
        now = self._clock()
        actor = f"playbook {playbook}"
        return await self._change(
            lambda book: book.note(id, f"to {channel}: {text}", now, actor, EventKind.REMEDIATION, None),
            id,
            step=(channel, text),
        )

    async def _transition(self, id: str, to: IncidentStatus, actor: str, reason: str) -> None:
        await self._change(lambda book: book.transition(id, to, self._clock(), actor, reason), id)

    async def _change(
        self,
        change: Callable[[Book], Changes],
        id: str | None = None,
        *,
        remind: datetime | None = None,
        step: tuple[str, str] | None = None,
        paging: Sequence[Fired] = (),
    ) -> int:
        """Apply a change to the book and record it with what it tells people; how many notifications it wrote.

        ``id``: an incident the book may have to read first; ``remind``: also remind of updates overdue
        at that time; ``step``: a playbook's notify step (channel, text) to send; ``paging``: escalation steps
        fired by ``change`` (their notices are written with it).
        """
        if self._book is None:
            raise UnknownIncident(id or "")
        async with self._one_at_a_time:
            await self._ensure_book()
            book = self._book
            if id is not None and id not in book.incidents:
                found = await self._store.incident(id, timeline_limit=0)
                if found is None:
                    raise UnknownIncident(id)
                book.restore(found[0])  # an old resolved incident: the book forgets it again at a tick
                if self._planner is not None:
                    self._planner.restore(*await self._store.notify_state(id))
            try:
                changes = change(book)
                notices = self._notices(book, changes, remind, step)
                for fired in paging:
                    notices = (notices or Notices()).extend(fired.notices)
                    self._adopt(fired.notices)
            except Exception:
                book.discard()
                self._book_loaded = False  # the planner may have moved on: both are loaded again
                raise
            await self._guarded(self._store.record(changes, notices=notices))
        told = notices is not None and bool(notices.intents)  # the report wakes the sender: nothing waits for a poll
        if changes.opened or changes.acknowledged or changes.resolved or changes.suppressed or told:
            self._report(self.cursor, self._tally(changes))
        self._paged(notices)
        return len(notices.intents) if notices is not None else 0

    def _notices(
        self, book: Book, changes: Changes, remind: datetime | None, step: tuple[str, str] | None
    ) -> Notices | None:
        """What a change tells people (None without a planner)."""
        if self._planner is None:
            return None
        now = self._clock()
        notices = self._planner.plan(changes, book.incidents, now)
        if self._escalator is not None:
            notices.extend(self._escalator.follow(changes, book.incidents, now))
        if step is not None and changes.events:
            incident_id, event, _ = changes.events[-1]
            notices.extend(self._planner.step(book.incidents[incident_id], step[0], replace(event, text=step[1])))
        if remind is not None:
            notices.extend(self._planner.remind(book.incidents, remind))
            self._planner.forget(book.incidents)
            if self._escalator is not None:
                self._escalator.forget(book.incidents)
        return notices

    def _adopt(self, notices: Notices) -> None:
        """The targets a fired step paged hear how the incident ends."""
        if self._planner is not None:
            self._planner.adopt(notices.targets)

    def _paged(self, notices: Notices | None) -> None:
        """Wake the escalation loop when escalations moved (written: their deadlines are in the store)."""
        if notices is not None and notices.escalations:
            self.paging.set()

    def _tally(self, changes: Changes) -> Tally:
        """What incident changes count, with who acknowledged through which path."""
        tally = Tally.of_incidents(changes)
        if self._escalator is not None and self._book is not None:
            acks = self._escalator.acknowledgements(changes, self._book.incidents)
            tally.acknowledgements = [(a.severity, a.seconds, a.path, a.by) for a in acks]
        return tally

    async def _decided(self, entries: Entries) -> Batch:
        """Read the states the entries need, decide every alert, and tell the book the news: the batch to write."""
        known = await self._store.alert_states(fingerprints(entries))
        processed, changed = decide_all(entries, known, self._decide)
        now = entries[-1][0].received_at
        derived = self._booked(lambda book: self._follow(book, now, processed))
        changes, runs, evidence = derived or (Changes(), [], [])
        notices = self._booked(lambda book: self._notices(book, changes, None, None)) or Notices()
        watchdog = self._arrivals(processed)
        return Batch(self.cursor, processed, changed, changes, runs, evidence, watchdog=watchdog, notices=notices)

    def _booked(self, follow: Callable[[Book], T]) -> T | None:
        """What the book makes of news (None without a book); if that fails, the book is loaded again."""
        if self._book is None:
            return None
        try:
            return follow(self._book)
        except BaseException:
            self._book_loaded = False
            raise

    async def _guarded(self, writing: Awaitable[T]) -> T:
        """Await a transaction that carries book changes; if it fails, the book no longer matches the store."""
        try:
            return await writing
        except BaseException:
            if self._book is not None:
                self._book_loaded = False
            raise

    async def _ensure_book(self) -> None:
        """Load the book from the store at the start, and again after a failed transaction."""
        if self._book is None or self._book_loaded:
            return
        policy = self._book.policy
        since = self._clock() - policy.correlation.reopen_window - policy.correlation.window
        loaded = await self._store.load_incidents(since)
        self._book = Book(policy)
        self._sightings = loaded.watchdog
        if self._planner is not None:
            self._planner.reset()
            self._planner.restore(loaded.targets, loaded.due)
        if self._escalator is not None:
            self._escalator.reset()
            self._escalator.restore(loaded.escalations)
            self.paging.set()
        self._book.set_counters(loaded.numbers, loaded.last_seq)
        for incident in loaded.incidents:
            self._book.restore(incident)
        self._book_loaded = True
        log.info("incidents loaded", extra={"incidents": len(self._book.incidents)})

    def _follow(
        self, book: Book, now: datetime, processed: Sequence[Processed]
    ) -> tuple[Changes, list[RunIntent], list[EvidenceRequest]]:
        """Give the book the news of a batch; what changed, and the playbook runs and evidence the news asks for."""
        news: list[AlertFacts] = []
        last_opened = book.last_seq
        for item in processed:
            if item.notification is None:
                continue
            for alert, decision in zip(item.notification.alerts, item.decisions, strict=True):
                if book.policy.ignores(alert.labels):  # stored, listed, never an incident's nor a playbook's
                    if decision.outcome is Outcome.RESOLVED:  # one that joined an incident before it was ignored
                        book.resolved(alert.fingerprint, decision.state.last_changed)
                    continue
                if decision.outcome is Outcome.FIRED:
                    book.fired(alert.fingerprint, alert.labels, alert.annotations, decision.state.last_changed)
                elif decision.outcome is Outcome.RESOLVED:
                    book.resolved(alert.fingerprint, decision.state.last_changed)
                else:
                    continue
                facts = AlertFacts(alert.fingerprint, alert.status, alert.labels, alert.annotations, alert.starts_at)
                news.append(facts)
        changes = book.settle(now)
        runs = [] if self._remediation is None else self._remediation.intents(news, book, now)
        if not self._evidence:
            return changes, runs, []
        opened = [i for i in changes.incidents.values() if i.seq > last_opened]
        by_fingerprint = {f.fingerprint: f for f in news}
        subjects = book.policy.correlation.subject
        return changes, runs, requests_for(opened, runs, by_fingerprint, now, self._evidence, subjects)

    @staticmethod
    def _follow_expired(book: Book, now: datetime, fingerprints: Sequence[str]) -> Changes:
        for fingerprint in fingerprints:
            book.resolved(fingerprint, now, expired=True)
        return book.settle(now)

    async def forget(self, before: datetime) -> int:
        """Forget resolved and expired alerts unchanged since ``before``; how many."""
        async with self._one_at_a_time:
            forgotten = await self._store.prune_alerts(before)
        if forgotten:
            log.info("forgot %d resolved or expired alerts", forgotten)
        return forgotten

    def _take_handed(self) -> Entries:
        """The handed-over entries that continue the cursor without a gap."""
        taken: Entries = []
        seq = self.cursor + 1
        while len(taken) < self._batch_size and seq in self._handed:
            entry, valid = self._handed.pop(seq)
            taken.append((entry, valid.notification()))
            seq += 1
        return taken

    async def _read_inbox(self) -> Entries:
        entries = await self._store.inbox(after=self.cursor, limit=self._batch_size)
        for stale in [seq for seq in self._handed if seq <= self.cursor]:
            del self._handed[stale]
        handed = [self._handed.pop(e.seq, None) for e in entries]
        return [(e, h[1].notification() if h else _decode(e)) for e, h in zip(entries, handed, strict=True)]

    async def _read(self, after: int) -> Entries:
        return [(e, _decode(e)) for e in await self._store.inbox(after=after, limit=self._batch_size)]

    async def _read_ahead(self) -> Entries:
        """The batch read ahead, if it starts right after the cursor (a failed write leaves it stale)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return []
        after, reading = ahead
        if after != self.cursor:
            reading.cancel()
            return []
        return await reading

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None

    async def drain(self) -> None:
        """Process until the inbox is empty (for shutdown and tests)."""
        while await self.step():
            pass


def _log(item: Processed) -> None:
    if item.notification is None or not log.isEnabledFor(logging.DEBUG):
        return
    log.debug(
        "notification processed",
        extra={
            "inbox_seq": item.seq,
            "group_key": item.notification.group_key,
            "news": [f"{d.state.fingerprint}:{d.outcome.value}" for d in item.decisions if d.is_news][:50],
        },
    )


def _decode(entry: InboxEntry) -> Notification | None:
    try:
        return decode(entry.body)
    except InvalidNotification as err:  # validated before it was accepted: only an upgrade can get here
        log.error("inbox entry cannot be decoded; skipped", extra={"inbox_seq": entry.seq, "error": str(err)})
        return None


async def expiry_loop(processor: Processor, clock: Clock, interval: timedelta, retention: timedelta) -> None:
    """Every ``interval``, until cancelled: expire silent alerts, forget those resolved before ``retention``."""
    while True:
        now = clock()
        try:
            await processor.expire(now)
            await processor.tick(now)
            await processor.watch(now)
            await processor.forget(now - retention)
        except StoreError as err:
            log.error("expiry failed", extra={"error": str(err)})
        await asyncio.sleep(interval.total_seconds())
