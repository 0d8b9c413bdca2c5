"""The timer: how long things take and how long to wait, for the playbook executor.

A playbook's ``wait`` lasts minutes and each step has a time limit. The
executor measures and waits through a ``Timer`` it is handed, never through
``asyncio.sleep`` or ``time.monotonic`` directly, so that tests run the
shipped playbooks with their real durations in no time: ``RealTimer`` (the
default) sleeps; ``VirtualTimer`` lets virtual seconds pass as soon as
nothing under a time limit is busy. Wall time (``now``) stays the clock's
(``receiver/clock.py``): a fixed clock plus virtual sleeps is what a test
wants. Kubernetes calls keep their real network timeouts. A timer crosses
into the engine process as text (``--timer virtual``), like the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

SETTLE_ROUNDS = 8
"""Event-loop rounds a ``VirtualTimer`` lets pass before moving time, so tasks woken together all get to run."""


class Timer(Protocol):
    """Monotonic seconds, sleeping, and time limits."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start: only differences mean something."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` (cancellable)."""
        ...

    def limit(self, seconds: float) -> contextlib.AbstractAsyncContextManager[object]:
        """A block that raises ``TimeoutError`` if it has not ended within ``seconds``."""
        ...

    def hold(self) -> contextlib.AbstractAsyncContextManager[object]:
        """A block of work that time waits for, but while it sleeps on this timer (a playbook run)."""
        ...


class RealTimer:
    """The real one: ``time.monotonic``, ``asyncio.sleep`` and ``asyncio.timeout``."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)

    def limit(self, seconds: float) -> contextlib.AbstractAsyncContextManager[object]:
        """``asyncio.timeout``."""
        return asyncio.timeout(seconds)

    def hold(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Nothing: real time waits for nobody."""
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        return "RealTimer()"


REAL = RealTimer()


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    fire: Callable[[], None] = field(compare=False)
    sleeper: bool = field(compare=False)
    gone: bool = field(default=False, compare=False)


class VirtualTimer:
    """Virtual seconds: they pass at once, whenever every task under a time limit is asleep on this timer.

    Deterministic and cooperative: a sleep is a future, never a blocked loop; time moves only after
    ``SETTLE_ROUNDS`` rounds of the event loop with no task inside a ``limit`` or a ``hold`` busy (such a task
    that awaits anything but this timer's ``sleep``, e.g. the Kubernetes API or the store, holds virtual time
    still: a time limit never fires during real work, and two runs' steps interleave as their waits say), and
    then straight to the next thing due (limits before sleeps due at the same instant: a wait exactly as long
    as its limit does not finish). Cancelling a sleeper ends its sleep. A held task must not wait for something
    that only virtual time brings (another task's sleep): time would stand still.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._due: list[_Due] = []
        self._seq = itertools.count()
        self._busy: dict[asyncio.Task[object], int] = {}
        """Tasks inside a ``limit``, and how many deep (0: inside one, and asleep)."""
        self._ticking = False

    def monotonic(self) -> float:
        """Virtual seconds since the timer was made."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Return when virtual time reaches now + ``seconds``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        due = self._at(self._now + max(seconds, 0.0), functools.partial(_wake, future), True)
        task = asyncio.current_task()
        depth = self._busy.get(task, 0) if task is not None else 0
        if task is not None and depth:
            self._busy[task] = 0  # asleep: its limits do not hold time still
        self._kick()
        try:
            await future
        finally:
            due.gone = True
            if task is not None and depth:
                self._busy[task] = depth

    @contextlib.asynccontextmanager
    async def limit(self, seconds: float) -> AsyncIterator[None]:
        """Cancel the block's task when virtual time passes now + ``seconds``; ``TimeoutError`` then."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("VirtualTimer.limit needs a task")
        fired = False

        def fire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        due = self._at(self._now + seconds, fire, False)
        try:
            async with self.hold():
                yield
        except asyncio.CancelledError:
            if fired and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            due.gone = True

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Time waits for the block's task, but while it sleeps on this timer."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("VirtualTimer.hold needs a task")
        self._busy[task] = self._busy.get(task, 0) + 1
        try:
            yield
        finally:
            depth = self._busy.pop(task, 1) - 1
            if depth > 0:
                self._busy[task] = depth
            self._kick()

    def _at(self, at: float, fire: Callable[[], None], sleeper: bool) -> _Due:
        due = _Due(at, next(self._seq), fire, sleeper)
        heapq.heappush(self._due, due)
        return due

    def _kick(self) -> None:
        if not self._ticking:
            self._ticking = True
            asyncio.get_running_loop().call_soon(self._tick, SETTLE_ROUNDS)

    def _tick(self, rounds: int) -> None:
        while self._due and self._due[0].gone:
            heapq.heappop(self._due)
        if not any(d.sleeper and not d.gone for d in self._due) or any(self._busy.values()):
            self._ticking = False  # nobody asleep, or someone busy: a sleep or a limit's end kicks again
            return
        if rounds > 0:
            asyncio.get_running_loop().call_soon(self._tick, rounds - 1)
            return
        due = heapq.heappop(self._due)
        self._now = max(self._now, due.at)
        due.fire()
        asyncio.get_running_loop().call_soon(self._tick, SETTLE_ROUNDS)

    def __repr__(self) -> str:
        return f"VirtualTimer(at={self._now:g}s)"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def describe(timer: Timer) -> str | None:
    """The text another process rebuilds ``timer`` from (a fresh one); None for the real timer. Pure."""
    if isinstance(timer, VirtualTimer):
        return "virtual"
    if isinstance(timer, RealTimer):
        return None
    raise ValueError(f"{timer!r} cannot cross into another process: use RealTimer or VirtualTimer")


def parse(text: str) -> Timer:
    """The timer ``describe`` wrote: ``real`` or ``virtual``. ValueError names what is wrong."""
    if text == "virtual":
        return VirtualTimer()
    if text == "real":
        return REAL
    raise ValueError(f"timer {text!r}: expected real or virtual")
