"""The evidence worker: captures the evidence the store asks for, beside processing, never in its way.

The processor records evidence requests in the transactions of the news
that opens an incident or triggers a playbook; this worker, a task of the
engine, claims them, captures each (``receiver.evidence.capture``: bounded
in time and size, a failure recorded, never raised) and stores the result
with a line in the incident's timeline. Captures run a few at a time, as
tasks of their own: a capture that hangs until its deadline holds one slot,
not the worker and never processing. At start, requests a stopped engine
left claimed are captured again. The engine supervises ``run``: if it
fails it is logged at error level, counted
(``receiver_evidence_worker_restarts_total``) and started again.

Evidence first: a playbook run that is about to change the cluster asks
``stored`` for its alert episode's evidence and waits until it is stored,
told by the worker whenever a result is stored (no polling), at most
``bound`` real seconds (the capture's deadline and a margin): the state of a
crash-looping pod is read before the playbook deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from receiver.clock import Clock
from receiver.engine.waking import woken
from receiver.evidence.capture import Captured, capture
from receiver.evidence.content import Bounds
from receiver.evidence.records import ClaimedEvidence, EvidenceResult, EvidenceStatus, Outcome
from receiver.incidents.subject import SubjectPolicy
from receiver.kube import Kube
from receiver.metrics import Tally
from receiver.store import EvidenceStore, StoreError

log = logging.getLogger(__name__)
CHECK_SECONDS = 10.0
"""How often the worker looks for requests when nothing wakes it (a request left after a failed store)."""
STORE_MARGIN_SECONDS = 2.0
"""How much longer than a capture's deadline a run waits for its evidence (claiming it, storing it)."""


class EvidenceWorker:
    """Claims evidence requests and captures them, ``concurrency`` at a time."""

    def __init__(
        self,
        store: EvidenceStore,
        kube: Kube,
        bounds: Bounds,
        clock: Clock,
        report: Callable[[Tally], None],
        concurrency: int = 4,
        subjects: SubjectPolicy | None = None,
        margin: float = STORE_MARGIN_SECONDS,
    ) -> None:
        """``subjects``: how an alert's subject is told from its exporter (``incidents.subject``).

        ``margin``: added to the capture's deadline, how long a run waits for its evidence at most (``bound``).
        """
        self.bound = bounds.deadline.total_seconds() + margin
        """Most real seconds ``stored`` waits."""
        self._stored = asyncio.Event()
        """Set, and replaced by a new one, whenever a result is stored."""
        self._subjects = subjects or SubjectPolicy()
        self._store = store
        self._kube = kube
        self._bounds = bounds
        self._clock = clock
        self._report = report
        self._concurrency = concurrency
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._released = False

    def wake(self) -> None:
        """Say that requests may have been recorded."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: claim and capture whatever is asked. Captures in flight are cancelled with it.

        Started again after a failure, it first releases what is left claimed (its captures were cancelled).
        """
        self._released = False
        try:
            while True:
                try:
                    await self.step()
                except StoreError as err:
                    log.error("evidence requests could not be taken", extra={"error": str(err)})
                await woken(self._wake, CHECK_SECONDS)
        finally:
            for task in self._running:
                task.cancel()

    async def step(self) -> int:
        """Claim as many requests as there are free slots and start capturing them; how many."""
        if not self._released:
            released = await self._store.release_evidence()
            self._released = True
            if released:
                log.warning("%d evidence captures were interrupted by the engine stopping; capturing again", released)
        free = self._concurrency - len(self._running)
        if free <= 0:
            return 0
        claimed = await self._store.claim_evidence(free)
        for request in claimed:
            task = asyncio.create_task(self._capture(request), name=f"evidence {request.id}")
            self._running.add(task)
            task.add_done_callback(self._ended)
        return len(claimed)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("evidence capture task failed", exc_info=task.exception())
        self._wake.set()  # a slot is free: more may wait

    async def stored(self, incident: str, fingerprint: str, episode: datetime) -> str | None:
        """Wait until the evidence asked for this alert episode in ``incident`` is stored; why not, if it was not.

        None at once when none was asked (evidence off, an alert naming no object). Otherwise the store is
        read again whenever a result is stored, for at most ``bound`` real seconds (never a timer's: the
        capture is real work). A run that is not told None goes on without the evidence, and says why.
        """
        try:
            async with asyncio.timeout(self.bound):
                while True:
                    stored = self._stored  # taken before reading: a result stored meanwhile sets it
                    if not await self._pending(incident, fingerprint, episode):
                        return None
                    await stored.wait()
        except TimeoutError:
            return f"not stored within {self.bound:g}s"
        except StoreError as err:
            return f"not looked up: {err}"

    async def _pending(self, incident: str, fingerprint: str, episode: datetime) -> bool:
        """Whether evidence of this alert episode in ``incident`` was asked and is not stored yet."""
        return any(
            (r.request.fingerprint, r.request.episode) == (fingerprint, episode) and r.status is not EvidenceStatus.DONE
            for r in await self._store.evidence(incident)
        )

    def _told(self) -> None:
        """A result was stored: whoever waits in ``stored`` looks again."""
        self._stored.set()
        self._stored = asyncio.Event()

    async def drain(self) -> None:
        """Capture until nothing is pending or running (tests, benchmarks)."""
        while await self.step() or self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def _capture(self, claimed: ClaimedEvidence) -> None:
        request = claimed.request
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            found = await capture(self._kube, request.labels, request.episode, self._bounds, self._subjects)
        except Exception as err:  # a bug in capturing: recorded on the evidence, never fatal
            log.error("evidence capture failed", exc_info=True, extra={"incident": request.incident})
            found = Captured(Outcome.FAILED, f"capture failed: {err!r}", {"errors": [repr(err)]})
        seconds = loop.time() - started
        result = EvidenceResult(
            claimed.id,
            request.incident,
            request.fingerprint,
            found.outcome.value,
            found.summary,
            found.content,
            self._clock(),
        )
        try:
            await self._store.store_evidence(result)
        except StoreError as err:  # left claimed: captured again at the next start; counted as failed meanwhile
            log.error("evidence not stored", extra={"incident": request.incident, "error": str(err)})
            self._report(Tally(evidence=[(Outcome.FAILED.value, seconds)]))
            return
        self._told()
        log.info("evidence %s", found.outcome.value, extra={"incident": request.incident, "summary": found.summary})
        self._report(Tally(evidence=[(found.outcome.value, seconds)]))
