"""The one composition root of the engine: its parts assembled from settings, a clock and a store.

The engine process and the web process's inline mode (and through it the
tests) used to wire the processor and the runner each in its own way, and
drifted: only one of them took a clock. Both now call ``build``; whatever
differs between them (the store, the clock, the Kubernetes adapter, where the
counts go) is an argument, so a second wiring cannot grow back.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping

from receiver.clock import Clock
from receiver.config import Settings
from receiver.engine.coverage import coverage_loop
from receiver.engine.escalating import escalation_loop
from receiver.engine.evidence import EvidenceWorker
from receiver.engine.notifier import Notifier, RetryPolicy
from receiver.engine.processor import Processor, expiry_loop
from receiver.engine.runner import Runner
from receiver.incidents.book import Book
from receiver.kube import Kube
from receiver.metrics import Tally
from receiver.notify import channels as channel_types
from receiver.notify.channel import Channel
from receiver.notify.escalation import Escalator
from receiver.notify.http import Http
from receiver.notify.planning import Channels, Planner
from receiver.playbooks.remediation import Remediation
from receiver.store import Store
from receiver.timer import REAL, Timer

log = logging.getLogger(__name__)
SUPERVISED_BACKOFF_SECONDS = (0.5, 30.0)
"""First and longest wait before the evidence worker is started again after a failure."""
QUIESCE_SECONDS = 3.0
"""How long a stopping engine lets notifications in flight end (within the web process's grace for it)."""
Report = Callable[[int, Tally], None]
"""Told the inbox seq processed so far and what a step counted (processing and runs alike)."""


class Engine:
    """The processor, the runner, the expiry loop, the evidence worker and the coverage check, and their tasks."""

    def __init__(
        self,
        processor: Processor,
        runner: Runner,
        remediation: Remediation,
        kube: Kube,
        settings: Settings,
        clock: Clock,
        evidence: EvidenceWorker | None = None,
        report: Report | None = None,
        notifier: Notifier | None = None,
        http: Http | None = None,
    ) -> None:
        self.processor = processor
        self.notifier = notifier
        self._http = http
        self.runner = runner
        self.evidence = evidence
        self._report = report
        self.remediation = remediation
        self.kube = kube
        self._settings = settings
        self._clock = clock
        self._processing: asyncio.Task[None] | None = None
        self._upkeep: list[asyncio.Task[None]] = []
        self._stopping = False
        self.failed: asyncio.Future[str] | None = None
        """Set to the name of the first of its tasks that ended by itself (they only end when stopped)."""

    @property
    def playbooks(self) -> list[str]:
        """The names of the loaded playbooks."""
        return [p.name for p in self.remediation.playbooks]

    def start(self) -> None:
        """Start processing the inbox, running playbooks and expiring silent alerts."""
        alerts = self._settings.alerts
        self.failed = asyncio.get_running_loop().create_future()
        self._processing = asyncio.create_task(self.processor.run(), name="processor")
        self._upkeep = [
            asyncio.create_task(self.runner.run(), name="runner"),
            asyncio.create_task(
                expiry_loop(self.processor, self._clock, alerts.expiry_check_interval, alerts.retention),
                name="expiry",
            ),
        ]
        if self.evidence is not None:
            evidence = self._supervised(self.evidence.run, "the evidence worker", Tally(evidence_restarts=1))
            self._upkeep.append(asyncio.create_task(evidence, name="evidence"))
        if self.notifier is not None:
            sender = self._supervised(self.notifier.run, "the notification sender", Tally(notifier_restarts=1))
            self._upkeep.append(asyncio.create_task(sender, name="notifier"))
        if self._settings.oncall.schedules:
            coverage = self._supervised(self._coverage, "the coverage check", Tally(coverage_restarts=1))
            self._upkeep.append(asyncio.create_task(coverage, name="coverage"))
        if self.processor.escalates:
            loop = functools.partial(escalation_loop, self.processor, self._clock)
            ladder = self._supervised(loop, "the escalation loop", Tally(escalation_restarts=1))
            self._upkeep.append(asyncio.create_task(ladder, name="escalation"))
        for task in (self._processing, *self._upkeep):
            task.add_done_callback(self._ended)

    async def _coverage(self) -> None:
        """The coverage check, at once and daily, its results told like every count."""
        oncall = self._settings.oncall
        schedules = oncall.schedule_values()

        def tell(tally: Tally) -> None:
            if self._report is not None:
                self._report(self.processor.cursor, tally)

        policies, reachable = self._settings.coverage_policies()
        await coverage_loop(
            schedules, oncall.coverage.weeks, self._clock, tell, policies=policies, reachable=reachable
        )

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A task ended: unless the engine is stopping, that is a failure, logged and told through ``failed``."""
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, whatever follows
        if self._stopping:
            return
        log.error("engine task %s ended: %r", task.get_name(), error, exc_info=error)
        if self.failed is not None and not self.failed.done():
            self.failed.set_result(task.get_name())

    async def _supervised(self, run: Callable[[], Awaitable[None]], what: str, restart: Tally) -> None:
        """Run ``run`` until cancelled; whenever it fails: logged at error level, counted, started again."""
        delay = SUPERVISED_BACKOFF_SECONDS[0]
        while True:
            try:
                await run()
                raise RuntimeError("it returned")  # it only ends when cancelled
            except Exception as err:
                log.error("%s failed; starting it again in %.1fs", what, delay, exc_info=err)
                if self._report is not None:
                    self._report(self.processor.cursor, restart)
            await asyncio.sleep(delay)
            delay = min(delay * 2, SUPERVISED_BACKOFF_SECONDS[1])

    async def stop(self, before_processing: Callable[[], Awaitable[None]] | None = None) -> None:
        """Stop the runner and expiry, then ``before_processing`` (the web's last commits), then processing.

        What is left in the inbox is processed at the next start.
        """
        self._stopping = True
        if self.notifier is not None:
            left = await self.notifier.quiesce(QUIESCE_SECONDS)
            if left:
                log.warning("%d notifications were still being sent when the engine stopped", left)
        for task in self._upkeep:
            await _cancel(task)
        if before_processing is not None:
            await before_processing()
        if self._processing is not None:
            await _cancel(self._processing)
        if self._http is not None:
            await self._http.close()


def build(
    settings: Settings,
    store: Store,
    *,
    clock: Clock,
    kube: Kube | None = None,
    report: Report,
    linger: float = 0.0,
    timer: Timer = REAL,
) -> Engine:
    """Assemble an engine: playbooks loaded, the runner told of processed news, counts sent to ``report``.

    ``kube``: the Kubernetes adapter (default: from the environment, on the engine's clock).
    ``timer``: the time of playbook steps (their limits and waits); virtual in tests, beside a fixed clock.
    """
    remediation = Remediation.load(settings.remediation.playbook_dirs, settings.remediation.namespace_policy())
    adapter = kube or Kube.from_environment(clock=clock)
    defaults = settings.remediation.guardrails.limits()
    evidence = None
    if settings.evidence.enabled:
        evidence = EvidenceWorker(
            store,
            adapter,
            settings.evidence.bounds(),
            clock,
            lambda tally: report(processor.cursor, tally),
            settings.evidence.concurrency,
            settings.incidents.subject.policy(),
        )

    channels = {name: channel_types.build(name, c) for name, c in settings.notify.channels.items()}
    planner, notifier, http, escalator = None, None, None, None
    if channels:
        planner = Planner(settings.notify.route_list(), _listeners(channels), settings.notify.cadence_policy())
        ladders = settings.ladders()
        escalator = Escalator(ladders) if ladders.policies else None
        http = Http()
        notifier = _notifier(settings, store, channels, http, clock, lambda tally: report(processor.cursor, tally))

    runner = Runner(
        store,
        adapter,
        lambda name: remediation.limits(name, defaults),
        clock,
        lambda tally: report(processor.cursor, tally),
        lambda incident, playbook, text, signal: processor.remediation(incident, playbook, text, signal),
        settings.remediation.guardrails.approval_timeout,
        [p.name for p in remediation.playbooks],
        timer,
        remediation.namespaces,
        evidence,
        (lambda i, playbook, channel, text: processor.notify(i, playbook, channel, text)) if channels else None,
    )

    def processed(reached: int, tally: Tally) -> None:
        report(reached, tally)
        runner.wake()
        if evidence is not None:
            evidence.wake()
        if notifier is not None:
            notifier.wake()

    processor = Processor(
        store,
        policy=settings.alerts.policy(),
        report=processed,
        batch_size=settings.store.process_batch,
        linger=linger,
        book=Book(settings.incidents.policy()),
        clock=clock,
        remediation=remediation,
        evidence=settings.evidence.per_incident if settings.evidence.enabled else 0,
        planner=planner,
        escalator=escalator,
    )
    return Engine(processor, runner, remediation, adapter, settings, clock, evidence, report, notifier, http)


def _listeners(channels: Mapping[str, Channel]) -> Channels:
    """What planning needs of the channels: their types, and which signals each wants."""
    return Channels({n: c.kind for n, c in channels.items()}, lambda name, signal: channels[name].wants(signal))


def _notifier(
    settings: Settings,
    store: Store,
    channels: Mapping[str, Channel],
    http: Http,
    clock: Clock,
    report: Callable[[Tally], None],
) -> Notifier:
    notify = settings.notify
    retry = RetryPolicy(
        notify.retry.first, notify.retry.longest, notify.retry.give_up_after, notify.retry.send_timeout.total_seconds()
    )
    composer = notify.composer()
    return Notifier(
        store,
        channels,
        composer,
        http,
        clock,
        report,
        link=notify.link,
        signer=settings.oncall.links.signer(notify.external_url),
        correlation=settings.incidents.policy().correlation,
        retry=retry,
        concurrency=notify.concurrency,
        retention=notify.retention,
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; an error it ended with was logged by ``Engine._ended``."""
    task.cancel()
    await asyncio.wait({task})
