"""The runner: carries recorded runs through the guardrails and the executor, recording every step.

Runs are recorded pending by the processor, with the news that asks for
them. The runner, in the engine, takes them in order: the guardrails judge
each against the runs before it (blocked, with the reason; awaiting
approval; or started), and a started run executes in a task of its own, its
record updated as each step ends. At start, runs left ``running`` by an
engine that stopped are marked ``interrupted`` and never started again: a
half-done remediation is for a person to look at, not to repeat (a run
stopped in the middle of a ``wait`` included: the wait is a sleep on the
run's timer, not a deadline in the store). A deferred step rendered while its
run runs is judged again (``judge_rendered``: busy, cooldown, blast radius)
before it acts, and recorded in the run's plan. A run that may change the
cluster first waits, bounded, for the evidence of its alert episode to be
stored (``EvidenceFirst``): what an on-call person reads is the state before
the playbook changed it, not a 404 of the pod it deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from typing import Any, Protocol

from receiver.clock import Clock
from receiver.engine.waking import woken
from receiver.incidents.book import Incident
from receiver.incidents.lifecycle import Signal
from receiver.kube import Kube
from receiver.metrics import Tally
from receiver.playbooks import actions
from receiver.playbooks.executor import RunOutcome, StepResult, execute
from receiver.playbooks.guardrails import (
    Block,
    Limits,
    PastRun,
    breaker_opens,
    judge,
    judge_rendered,
    pods_deleted,
    targets_of,
)
from receiver.playbooks.plan import NamespacePolicy, Plan, PlannedStep
from receiver.playbooks.records import BreakerReset, RunRecord, RunSummary, StartedRun, StepRecord
from receiver.playbooks.runs import RunStatus
from receiver.store import AlertStore, IncidentStore, RunStore, StoreError
from receiver.timer import REAL, Timer

log = logging.getLogger(__name__)


class UnknownRun(KeyError):
    """No run has this id."""


class RunConflict(ValueError):
    """The run does not wait for approval."""


KUBE_ACTIONS = actions.KUBERNETES
HISTORY = timedelta(hours=1)
PENDING_BATCH = 500
"""Most pending runs judged in one step (one look at the history, one transaction for the blocked)."""
CHECK_SECONDS = 10.0
"""How often the runner looks at runs awaiting approval when no news wakes it."""
"""How far back the guardrails look (the rate limit and pods-per-hour are hourly; cooldowns are shorter)."""


Timeline = Callable[[str, str, str, Signal | None], Awaitable[None]]
"""(incident id, playbook, text, what people are told of it): a line in an incident's timeline."""
Notify = Callable[[str, str, str, str], Awaitable[int]]
"""(incident id, playbook, channel, message): a playbook's ``notify`` step written to the outbox; how many rows."""


class RunnerStore(RunStore, AlertStore, IncidentStore, Protocol):
    """What the runner needs of the store: runs, whether an alert fires, an incident's members."""


class EvidenceFirst(Protocol):
    """The evidence worker as a run sees it (``receiver.engine.evidence.EvidenceWorker.stored``)."""

    async def stored(self, incident: str, fingerprint: str, episode: datetime) -> str | None:
        """Wait, bounded, until this alert episode's evidence in ``incident`` is stored; why not, if it was not."""
        ...


class Runner:
    """Judges pending runs and executes the allowed ones."""

    def __init__(
        self,
        store: RunnerStore,
        kube: Kube,
        limits_of: Callable[[str], Limits],
        clock: Clock,
        report: Callable[[Tally], None] = lambda _: None,
        timeline: Timeline | None = None,
        approval_timeout: timedelta = timedelta(minutes=15),
        playbooks: Collection[str] = (),
        timer: Timer = REAL,
        namespaces: NamespacePolicy | None = None,
        evidence: EvidenceFirst | None = None,
        notify: Notify | None = None,
    ) -> None:
        """``report``: told what each run counted (metrics, in whichever process serves them).

        ``timeline``: writes a line in the run's incident's timeline (through the incident book's writer).
        ``timer``: the runs' steps' time (limits, waits, durations). ``namespaces``: where deferred steps may act.
        ``evidence``: what a run that may change the cluster waits for first (None: evidence is off).
        ``notify``: where a ``notify`` step's message goes (None: notifications are off, the step is skipped).
        """
        self._evidence = evidence
        self._notify = notify
        self._timer = timer
        self._namespaces = namespaces or NamespacePolicy()
        self._store = store
        self._report = report
        self._timeline = timeline
        self._approval_timeout = approval_timeout
        self._playbooks = frozenset(playbooks)
        self._kube = kube
        self._limits_of = limits_of
        self._clock = clock
        self._wake = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()
        """A pending run is judged once: two judges reading it before either records it would start it twice."""
        self._running: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Say that runs may have been recorded."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: take pending runs whenever woken. Runs in flight are cancelled with it."""
        interrupted = await self._store.interrupt_runs(self._clock())
        if interrupted:
            self._report(Tally(runs=[(run.playbook, RunStatus.INTERRUPTED.value) for run in interrupted]))
            log.warning("%d runs were interrupted by the engine stopping; not started again", len(interrupted))
        if self._kube.why_dry:
            log.warning("playbook actions are dry-runs: %s", self._kube.why_dry)
        try:
            while True:
                # Woken by news, or now and then for approvals running out. Not ``wait_for``: on Python 3.11 it
                # can swallow a cancellation that races with the wake-up, and the runner never stopped.
                await woken(self._wake, CHECK_SECONDS)
                try:
                    while await self.step() >= PENDING_BATCH:  # a storm: keep taking them
                        pass
                except StoreError as err:
                    log.error("runs could not be taken", extra={"error": str(err)})
        finally:
            for task in self._running:
                task.cancel()

    async def step(self) -> int:
        """Judge every pending run, start the allowed ones; how many were judged.

        One look at the last hour and at each playbook's failures serves the whole step (runs started in it
        are added as they start), and the blocked ones are recorded together, with one timeline line per
        incident, playbook and reason: a storm that the guardrails block costs little more than counting it.
        A virtual timer's time stands still while it judges: the runs it starts begin at one instant.
        """
        async with self._one_at_a_time, self._timer.hold():
            await self._expire_approvals()
            pending = await self._store.pending_runs(PENDING_BATCH)
            if not pending:
                return 0
            now = self._clock()
            history = _history(await self._store.run_history(now - HISTORY))
            failures: dict[str, int] = {}
            blocked: list[tuple[RunRecord, Block, str]] = []
            for run in pending:
                plan = run.plan
                limits = self._limits_of(plan.playbook)
                if plan.playbook not in failures:
                    failures[plan.playbook] = await self._store.failures_in_a_row(
                        plan.playbook, limits.breaker_failures
                    )
                breaker = breaker_opens(failures[plan.playbook], limits)
                verdict = judge(plan, limits, history, breaker_open=breaker, now=now)
                if verdict.block is not None:
                    blocked.append((run, verdict.block, verdict.reason))
                    continue
                if await self._admit(run, verdict.approval, verdict.dry_run or self._kube.api is None, now):
                    history.append(PastRun(plan.playbook, targets_of(plan), now, False, pods_deleted(plan)))
            await self._record_blocked(blocked, now)
        return len(pending)

    async def _record_blocked(self, blocked: list[tuple[RunRecord, Block, str]], now: datetime) -> None:
        if not blocked:
            return
        await self._store.block_runs([(run.id, f"{block.value}: {why}") for run, block, why in blocked], now)
        self._report(
            Tally(
                runs=[(run.playbook, RunStatus.BLOCKED.value) for run, _, _ in blocked],
                blocks=[b.value for _, b, _ in blocked],
            )
        )
        lines: dict[tuple[str | None, str, Block], list[tuple[RunRecord, str]]] = {}
        for run, block, why in blocked:
            lines.setdefault((run.incident, run.playbook, block), []).append((run, why))
        for (_, _, block), runs in lines.items():
            first, why = runs[0]
            log.warning("runs blocked", extra={"runs": [r.id for r, _ in runs], "block": block.value, "reason": why})
            text = f"run {first.id} blocked: {block.value}: {why}"
            if len(runs) > 1:
                text = f"{len(runs)} runs blocked ({runs[0][0].id}..{runs[-1][0].id}): {block.value}: {why}"
            await self._note(first, text, Signal.RUN_BLOCKED)

    async def drain(self) -> None:
        """Judge what is pending and wait for every started run to end (tests, shutdown)."""
        await self.step()
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def _admit(self, run: RunRecord, approval: bool, dry_run: bool, now: datetime) -> bool:
        """Hold a run for approval, or start it; whether it started."""
        if approval:
            await self._store.await_approval(run.id, "needs approval")
            text = f"run {run.id} awaits approval (POST /api/v1/runs/{run.id}/approve)"
            await self._note(run, text, Signal.RUN_AWAITING_APPROVAL)
            return False
        await self._store.start_run(run.id, now, dry_run=dry_run, reason="")
        await self._note(run, f"run {run.id} started" + (" (dry-run)" if dry_run else ""))
        self._start(run, dry_run)
        return True

    async def _expire_approvals(self) -> None:
        now = self._clock()
        why = f"nobody approved it within {self._approval_timeout}"
        for run in await self._store.expire_approvals(now - self._approval_timeout, now, why):
            log.warning("run not approved in time", extra={"run": run.id, "playbook": run.playbook})
            self._report(Tally(runs=[(run.playbook, RunStatus.REJECTED.value)]))
            await self._note(run, f"run {run.id} rejected: {why}")

    async def _note(self, run: RunSummary, text: str, signal: Signal | None = None) -> None:
        """A line in the run's incident's timeline; a failure to write it does not stop the run."""
        if self._timeline is None or not run.incident:
            return
        try:
            await self._timeline(run.incident, run.playbook, text, signal)
        except Exception as err:  # the incident is the record's context, not a condition of the run
            log.warning("timeline not updated", extra={"run": run.id, "error": repr(err)})

    async def approve(self, run_id: str, actor: str, reason: str) -> None:
        """A person approves a run awaiting approval: it starts now. UnknownRun, RunConflict."""
        async with self._one_at_a_time:
            run = await self._awaiting(run_id, "approved")
            dry_run = self._limits_of(run.playbook).dry_run or self._kube.api is None
            await self._store.start_run(run.id, self._clock(), dry_run=dry_run, reason=_by("approved", actor, reason))
            self._start(run, dry_run)

    async def reject(self, run_id: str, actor: str, reason: str) -> None:
        """A person rejects a run awaiting approval: it never runs. UnknownRun, RunConflict."""
        async with self._one_at_a_time:
            run = await self._awaiting(run_id, "rejected")
            await self._store.finish_run(run.id, RunStatus.REJECTED, _by("rejected", actor, reason), self._clock())

    async def reset(self, playbook: str, actor: str, reason: str) -> None:
        """A person closes a playbook's circuit breaker: its failures so far no longer count. UnknownRun."""
        if playbook not in self._playbooks:
            raise UnknownRun(playbook)
        async with self._one_at_a_time:
            await self._store.reset_breaker(BreakerReset(playbook, actor, reason, self._clock()))
        log.info("circuit breaker reset", extra={"playbook": playbook, "actor": actor})

    async def _incident(self, id: str | None) -> dict[str, Any]:
        """The run's incident as it is when the run starts (a condition may ask for its severity)."""
        found = None
        if id is not None:
            with contextlib.suppress(StoreError):
                read = await self._store.incident(id, 0)
                found = read[0] if read else None
        return _incident_values(found, id)

    async def _awaiting(self, run_id: str, verb: str) -> RunRecord:
        run = await self._store.run(int(run_id)) if run_id.isdigit() else None
        if run is None:
            raise UnknownRun(run_id)
        if run.status is not RunStatus.AWAITING_APPROVAL:
            raise RunConflict(f"run {run_id} is {run.status.value}: only a run awaiting approval can be {verb}")
        return run

    def _start(self, run: RunRecord, dry_run: bool) -> None:
        task = asyncio.create_task(self._held(run, dry_run), name=f"run {run.id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _held(self, run: RunRecord, dry_run: bool) -> None:
        """A virtual timer waits for the run's reads and records, not only for its steps: it ends at its time."""
        async with self._timer.hold():
            await self._execute(run, dry_run)

    async def _execute(self, run: RunRecord, dry_run: bool) -> None:
        kube = self._kube if not dry_run or self._kube.dry_run else Kube(self._kube.api, dry_run=True)

        async def still_firing() -> bool:
            return await self._store.alert_firing(run.fingerprint)

        async def on_step(result: StepResult) -> None:
            await self._store.add_step(run.id, StepRecord.of(result))
            if result.action in KUBE_ACTIONS:
                self._report(Tally(actions=[(result.action, result.outcome.value, result.seconds)]))

        late = await self._evidence_first(run) if kube.api is not None and not kube.dry_run else None
        try:
            result = await execute(
                run.plan,
                kube,
                still_firing=still_firing,
                alert=run.alert.values(),
                incident=await self._incident(run.incident),
                on_step=on_step,
                timer=self._timer,
                namespaces=self._namespaces,
                on_render=lambda plan, step: self._rendered(run, plan, step),
                tell=self._teller(run),
            )
        except asyncio.CancelledError:
            raise  # the engine is stopping: the run stays "running" and is marked interrupted at the next start
        status = RunStatus.SUCCEEDED if result.outcome is RunOutcome.SUCCEEDED else RunStatus.FAILED
        log.info("run ended", extra={"run": run.id, "playbook": run.playbook, "outcome": status.value})
        self._report(Tally(runs=[(run.playbook, status.value)]))
        reason = "; ".join(r for r in (result.reason, late and f"went on without its evidence ({late})") if r)
        told = Signal.RUN_FAILED if status is RunStatus.FAILED else None
        await self._note(run, f"run {run.id} {status.value}" + (f": {reason}" if reason else ""), told)
        with contextlib.suppress(StoreError):
            await self._store.finish_run(run.id, status, reason, self._clock())

    def _teller(self, run: RunRecord) -> Callable[[str, str], Awaitable[int]] | None:
        """How the run's ``notify`` steps write to its incident's outbox (None: no notifications, or no incident)."""
        notify, incident = self._notify, run.incident
        if notify is None or incident is None:
            return None

        async def tell(channel: str, message: str) -> int:
            return await notify(incident, run.playbook, channel, message)

        return tell

    async def _evidence_first(self, run: RunRecord) -> str | None:
        """Wait, bounded, for the evidence of the run's alert episode; why the run goes on without it, if it does.

        Real work (the capture's reads) while the run is held: a virtual timer's time stands still meanwhile.
        """
        if self._evidence is None or run.incident is None:
            return None
        why = await self._evidence.stored(run.incident, run.fingerprint, run.episode)
        if why is not None:
            log.warning("run goes on without its evidence", extra={"run": run.id, "playbook": run.playbook, "why": why})
            await self._note(run, f"run {run.id} goes on without its evidence ({why})")
        return why

    async def _rendered(self, run: RunRecord, plan: Plan, step: PlannedStep) -> str | None:
        """A deferred step of ``run`` was rendered: why the guardrails refuse it, or None once it is recorded."""
        async with self._one_at_a_time:  # judged like a run's start: not while another judgment reads the history
            now = self._clock()
            limits = self._limits_of(run.playbook)
            others = _history([r for r in await self._store.run_history(now - HISTORY) if r.id != run.id])
            verdict = judge_rendered(plan, step, limits, others, now=now)
            if verdict.block is not None:
                self._report(Tally(blocks=[verdict.block.value]))
                await self._note(
                    run,
                    f"run {run.id} step {step.name!r} blocked: {verdict.block.value}: {verdict.reason}",
                    Signal.RUN_BLOCKED,
                )
                return f"{verdict.block.value}: {verdict.reason}"
            await self._store.render_step(run.id, step)
        return None


def _incident_values(found: Incident | None, id: str | None) -> dict[str, Any]:
    """What conditions see of the run's incident: ``incident.id``, ``.severity`` (``SEV1``...), ``.status``."""
    if found is None:
        return {"id": id, "severity": None, "status": None}
    return {"id": found.id, "severity": str(found.severity) if found.severity else None, "status": str(found.status)}


def _history(started: list[StartedRun]) -> list[PastRun]:
    return [PastRun(r.playbook, targets_of(r.plan), r.started_at, r.finished, pods_deleted(r.plan)) for r in started]


def _by(verb: str, actor: str, reason: str) -> str:
    """Who decided, and why when they said: ``approved by alice: looked at it``."""
    return f"{verb} by {actor}" + (f": {reason}" if reason else "")
