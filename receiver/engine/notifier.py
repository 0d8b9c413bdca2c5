"""The notification sender: claims due outbox rows, hands each to its channel, records the outcome.

The processor writes notifications as outbox rows in the transactions of the incident changes that
cause them; this worker, a task of the engine, does the rest, never in a request handler and never by
sleeping until something is due:

- it claims due rows (in order per incident and channel: a Slack reply never overtakes its message),
  a few at a time, each sent in a task of its own bounded by ``send_seconds``;
- a channel's documented rate (Slack about one message a second per channel, Statuspage one request
  a second) is kept per rate key: a row claimed too early goes back to pending with its next attempt
  at the first free moment (a deadline in the store, not a sleep), and while it waits, later changes
  to its incident merge into it (the planner's mergeable refreshes);
- a temporary failure (server error, timeout, rate limit) is tried again with exponential backoff, or
  after the ``Retry-After`` the provider asked for; a permanent one (client or authentication error)
  stops at once; both are shown (state, attempts, last error, a timeline line) and counted
  (``receiver_notifications_failed_total{channel,reason}``);
- at start, rows a stopped engine left ``sending`` are sent again when their channel says that is
  safe, looked up first when it must reconcile (a Slack post), or marked ``interrupted`` (an email: it
  may have left; sending it again could send it twice).

It wakes when the processor commits (``wake``) and otherwise when the earliest pending row is due.
The engine supervises ``run``: if it fails it is logged at error level, counted
(``receiver_notifier_restarts_total``) and started again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from receiver.clock import Clock
from receiver.engine import stories
from receiver.engine.waking import woken
from receiver.incidents.correlation import CorrelationPolicy
from receiver.incidents.lifecycle import Signal
from receiver.metrics import Tally
from receiver.notify.channel import Channel, Io, Replay
from receiver.notify.content import Audience, Compose, Detail, Markup, Message
from receiver.notify.http import Http
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent, Skipped, State
from receiver.notify.story import Story
from receiver.oncall.links import Signer
from receiver.store import OutboxStore, Outcome, StoreError

log = logging.getLogger(__name__)
PRUNE_EVERY = timedelta(hours=1)
"""How often rows past their retention are forgotten."""
CHECK_SECONDS = 30.0
"""Longest real wait between two looks at the outbox when nothing wakes the sender (a safety net)."""


class Composer(Protocol):
    """Renders a story for a channel (``receiver.notify.templates.Templates`` per route)."""

    def compose(self, story: Story, audience: Audience, markup: Markup, detail: Detail, route: str) -> Message:
        """The message in ``markup`` at ``detail``, with the route's templates."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How temporary failures are tried again."""

    first: timedelta = timedelta(seconds=5)
    longest: timedelta = timedelta(minutes=10)
    give_up_after: timedelta = timedelta(hours=2)
    """A row still failing this long after it was written stops (``failed``, shown, counted)."""
    send_seconds: float = 30.0
    """Longest one attempt may take (all its requests) before it counts as a timeout."""

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: doubling from ``first`` up to ``longest``."""
        wait: timedelta = self.first * (2 ** min(max(attempts - 1, 0), 30))
        return min(wait, self.longest)


class NotifierStore(stories.StoryStore, OutboxStore, Protocol):
    """What the sender reads and writes."""


class Notifier:
    """Sends what the outbox holds, ``concurrency`` deliveries at a time."""

    def __init__(
        self,
        store: NotifierStore,
        channels: Mapping[str, Channel],
        composer: Composer,
        http: Http,
        clock: Clock,
        report: Callable[[Tally], None],
        *,
        link: Callable[[str], str] = lambda _: "",
        signer: Signer | None = None,
        correlation: CorrelationPolicy | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int = 8,
        retention: timedelta = timedelta(days=30),
    ) -> None:
        """``link``: an incident id -> the address of its page (empty: none configured).

        ``signer``: makes the signed acknowledge/resolve links of internal messages (None: no links).

        ``correlation``: how the stories find each alert's service (None: the default policy).

        ``retention``: how long rows that ended are kept (they are the incident's record of who was told).
        """
        self._retention = retention
        self._pruned_at: datetime | None = None
        self._orphans = True
        """Rows may be left ``sending`` that nothing here sends (at start; after a failed write)."""
        self._store = store
        self._correlation = correlation
        self._channels = dict(channels)
        self._composer = composer
        self._io = Io(http, clock)
        self._clock = clock
        self._report = report
        self._link = link
        self._signer = signer
        self._retry = retry or RetryPolicy()
        self._concurrency = concurrency
        self._free_at: dict[tuple[str, str], datetime] = {}
        """(channel type, rate key) -> when its next request may go (the provider's documented rate): two
        configured channels posting to one Slack channel share its pace."""
        self._wake = asyncio.Event()
        self._running: dict[asyncio.Task[None], int] = {}
        """Deliveries being sent, by the id of their row."""
        self._quiescing = False

    def wake(self) -> None:
        """Say that rows may have been written."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: recover what a stopped engine left, then send whatever is due."""
        self._orphans = True
        try:
            while True:
                try:
                    await self.step()
                    wait = await self._until_next_due()
                except StoreError as err:
                    log.error("the outbox could not be read", extra={"error": str(err)})
                    wait = CHECK_SECONDS
                await woken(self._wake, wait)
        finally:
            for task in self._running:
                task.cancel()

    async def step(self) -> int:
        """Claim due rows for the free slots and start sending them; how many were started."""
        if self._orphans:
            await self.recover()
            self._orphans = False
        if self._quiescing:
            return 0
        await self._prune()
        free = self._concurrency - len(self._running)
        if free <= 0:
            return 0
        now = self._clock()
        started = 0
        claimed = await self._store.claim_notifications(now, free)
        for delivery in claimed:
            try:
                if await self._paced(delivery, now):
                    continue
            except StoreError:
                self._orphans = True  # this one and the rest of the claim are left sending: swept at the next step
                raise
            task = asyncio.create_task(self._deliver(delivery), name=f"notification {delivery.id}")
            self._running[task] = delivery.id
            task.add_done_callback(self._ended)
            started += 1
        return started

    async def quiesce(self, seconds: float) -> int:
        """Claim nothing more and let deliveries in flight end, for at most ``seconds``; how many did not.

        A graceful stop: an email being sent when the engine is told to stop is recorded ``sent``, not found
        ``interrupted`` at the next start. What is still running after ``seconds`` is cancelled with ``run``.
        """
        self._quiescing = True
        running = set(self._running)
        if not running:
            return 0
        _, pending = await asyncio.wait(running, timeout=seconds)
        return len(pending)

    async def drain(self) -> None:
        """Send until nothing is due or running (tests, benchmarks)."""
        while await self.step() or self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def recover(self) -> int:
        """Rows left ``sending`` that nothing sends (a stopped engine's; one whose outcome could not be written):
        sent again, reconciled, or marked interrupted; how many."""
        flying = set(self._running.values())
        stuck = [d for d in await self._store.stuck_notifications() if d.id not in flying]
        now = self._clock()
        for delivery in stuck:
            channel = self._channels.get(delivery.target.channel)
            replay = channel.replay(delivery) if channel is not None else Replay.NEVER
            if replay is Replay.NEVER:
                why = "not configured any more" if channel is None else "it may have left: not sent again"
                text = f"notification to {delivery.target} ({delivery.signal}) interrupted by a restart; {why}"
                log.error("notification interrupted", extra={"incident": delivery.incident, "key": delivery.key})
                await self._store.finish_notification(Outcome(delivery, State.INTERRUPTED, now, text))
                self._report(Tally(interrupted=[delivery.target.channel]))
            else:
                await self._store.defer_notifications([delivery.id], now, resumed=True)
        if stuck:
            log.warning("%d notifications were left being sent (the engine stopped, or a write failed)", len(stuck))
        return len(stuck)

    async def _prune(self) -> None:
        """Now and then, forget rows that ended longer than the retention ago."""
        now = self._clock()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        pruned = await self._store.prune_notifications(now - self._retention)
        if pruned:
            log.info("forgot %d notifications older than %s", pruned, self._retention)

    async def _paced(self, delivery: Delivery, now: datetime) -> bool:
        """Keep the channel's rate: a row too early goes back to pending until its slot (True); else reserve one."""
        channel = self._channels.get(delivery.target.channel)
        if channel is None or channel.min_interval() <= 0:
            return False
        key = (channel.kind, channel.rate_key(delivery))
        free_at = self._free_at.get(key)
        if free_at is not None and free_at > now:
            await self._store.defer_notifications([delivery.id], free_at)
            return True
        self._free_at[key] = now + timedelta(seconds=channel.min_interval())
        return False

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("notification task failed", exc_info=task.exception())
        self._wake.set()  # a slot is free, and rows behind this one may be due

    async def _until_next_due(self) -> float:
        """Seconds until the earliest pending row is due (at most ``CHECK_SECONDS``)."""
        due = await self._store.next_notification_due()
        if due is None:
            return CHECK_SECONDS
        return min(max((due - self._clock()).total_seconds(), 0.0), CHECK_SECONDS)

    async def _deliver(self, delivery: Delivery) -> None:
        channel = self._channels.get(delivery.target.channel)
        if channel is None:
            result: Result = Failed(Reason.CLIENT_ERROR, "the channel is not configured any more", permanent=True)
        else:
            result = await self._attempt(channel, delivery)
        outcome = self._outcome(delivery, result, channel)
        try:
            await self._store.finish_notification(outcome)
        except StoreError as err:  # left sending: swept soon (re-sent, reconciled or interrupted), never forgotten
            log.error("notification outcome not stored", extra={"key": delivery.key, "error": str(err)})
            self._orphans = True
        self._count(delivery, result, outcome)

    async def _attempt(self, channel: Channel, delivery: Delivery) -> Result:
        """One attempt, bounded in time; a bug in a channel or a template is a failure, never a crash."""
        extra = {"update": delivery.text} if delivery.signal is Signal.STATUS_UPDATE else None
        signed = (self._signer, self._clock()) if self._signer and channel.audience == "internal" else None
        try:
            story = await stories.read(
                self._store,
                delivery,
                self._link(delivery.incident),
                extra,
                signed=signed,
                correlation=self._correlation,
            )
        except stories.UnknownStory:
            return Failed(Reason.CLIENT_ERROR, f"incident {delivery.incident} is not in the store", permanent=True)
        except StoreError as err:
            return Failed(Reason.OTHER, f"the incident could not be read: {err}")
        compose = self._composing(story, channel.audience, delivery.route)
        try:
            async with asyncio.timeout(self._retry.send_seconds):
                return await channel.send(delivery, compose, self._io)
        except TimeoutError:
            return Failed(Reason.TIMEOUT, f"no answer within {self._retry.send_seconds:g}s", maybe_sent=True)
        except Exception as err:
            log.error("channel %s failed to send", channel.name, exc_info=err, extra={"key": delivery.key})
            return Failed(Reason.OTHER, f"the channel failed: {err!r}")

    def _composing(self, story: Story, audience: Audience, route: str) -> Compose:
        def compose(markup: Markup, detail: Detail) -> Message:
            return self._composer.compose(story, audience, markup, detail, route)

        return compose

    def _outcome(self, delivery: Delivery, result: Result, channel: Channel | None) -> Outcome:
        """What to record of an attempt."""
        now = self._clock()
        what = f"{delivery.signal} to {delivery.target}"
        if isinstance(result, Sent):
            note = f" ({result.note})" if result.note else ""
            text = f"notified {what}{note}"
            return Outcome(delivery, State.SENT, now, text, provider_id=result.provider_id, thread=result.thread)
        if isinstance(result, Skipped):
            return Outcome(delivery, State.SKIPPED, now, error=result.why)
        if result.maybe_sent and (channel is None or channel.replay(delivery) is Replay.NEVER):
            text = f"notification {what}: {result.message}; it may have been delivered, so it is not sent again"
            log.error("notification interrupted", extra={"key": delivery.key, "error": result.message})
            return Outcome(delivery, State.INTERRUPTED, now, text, reason=result.reason.value, error=result.message)
        return self._failure(delivery, result, now, what)

    def _failure(self, delivery: Delivery, failed: Failed, now: datetime, what: str) -> Outcome:
        """A failure: given up (permanent, or too old), or tried again (reconciled first if it may have left)."""
        reason = failed.reason.value
        give_up = now - delivery.created_at >= self._retry.give_up_after
        if failed.permanent or give_up:
            why = "" if failed.permanent else f" (still failing after {delivery.attempts} attempts: given up)"
            text = f"notification {what} failed ({reason}): {failed.message}{why}"
            log.error("notification failed", extra={"key": delivery.key, "reason": reason, "error": failed.message})
            return Outcome(delivery, State.FAILED, now, text, reason=reason, error=failed.message)
        wait = self._retry.backoff(delivery.attempts)
        if failed.retry_after is not None:  # bounded: a provider asking for years is asked again within the deadline
            seconds = min(max(failed.retry_after, 0.0), self._retry.give_up_after.total_seconds())
            wait = timedelta(seconds=seconds)
        again = now + wait
        channel = self._channels.get(delivery.target.channel)
        if failed.reason is Reason.RATE_LIMITED and channel is not None:
            self._free_at[(channel.kind, channel.rate_key(delivery))] = again
        log.warning("notification will be tried again", extra={"key": delivery.key, "reason": reason, "in": str(wait)})
        first = delivery.attempts == 1
        text = f"notification {what} failed ({reason}): {failed.message}; trying again" if first else ""
        return Outcome(
            delivery,
            State.PENDING,
            now,
            text,
            next_attempt_at=again,
            reason=reason,
            error=failed.message,
            resumed=failed.maybe_sent,
        )

    def _count(self, delivery: Delivery, result: Result, outcome: Outcome) -> None:
        name = delivery.target.channel
        if isinstance(result, Sent):
            self._report(Tally(sent=[(name, (outcome.at - delivery.created_at).total_seconds())]))
        elif isinstance(result, Failed):
            lost = [name] if outcome.state is State.INTERRUPTED else []
            self._report(Tally(failed=[(name, result.reason.value)], interrupted=lost))
