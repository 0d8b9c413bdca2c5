"""The executor's timers: virtual seconds pass at once, in order, and never while a step is busy."""

from __future__ import annotations

import asyncio

import pytest

from receiver import timer as timers
from receiver.timer import REAL, RealTimer, VirtualTimer

BOUND = 5.0
"""Real seconds any of these tests may take: virtual hours must pass in far less."""


async def test_virtual_sleeps_pass_at_once_and_in_order() -> None:
    timer = VirtualTimer()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await timer.sleep(seconds)
        woke.append((name, timer.monotonic()))

    async with asyncio.timeout(BOUND):
        await asyncio.gather(sleeper("hour", 3600), sleeper("minute", 60), sleeper("day", 86400))
    assert woke == [("minute", 60.0), ("hour", 3600.0), ("day", 86400.0)]  # concurrent sleeps overlap


async def test_a_limit_fires_on_a_sleep_that_outlasts_it() -> None:
    timer = VirtualTimer()
    async with asyncio.timeout(BOUND):
        with pytest.raises(TimeoutError):
            async with timer.limit(60):
                await timer.sleep(120)
    assert timer.monotonic() == 60.0
    async with asyncio.timeout(BOUND), timer.limit(60):  # a limit the sleep fits in
        await timer.sleep(59)
    assert timer.monotonic() == 119.0
    async with asyncio.timeout(BOUND):
        with pytest.raises(TimeoutError):  # as long as the sleep: the limit comes first
            async with timer.limit(30):
                await timer.sleep(30)
    assert timer.monotonic() == 149.0


async def test_virtual_time_stands_still_while_a_limited_task_is_busy() -> None:
    timer = VirtualTimer()
    answered = asyncio.Event()
    seen: list[float] = []

    async def step() -> None:  # like a step waiting for the Kubernetes API: real work under a limit
        async with timer.limit(10):
            await answered.wait()
            seen.append(timer.monotonic())

    async def other_run() -> None:  # another run's long wait, meanwhile
        await timer.sleep(3600)
        seen.append(timer.monotonic())

    async with asyncio.timeout(BOUND):
        tasks = [asyncio.create_task(step()), asyncio.create_task(other_run())]
        for _ in range(50):
            await asyncio.sleep(0)
        assert seen == [] and timer.monotonic() == 0.0  # the step's limit did not fire during its work
        answered.set()
        await asyncio.gather(*tasks)
    assert seen == [0.0, 3600.0]


async def test_a_cancelled_sleep_ends_and_does_not_hold_time() -> None:
    timer = VirtualTimer()
    async with asyncio.timeout(BOUND):
        sleeping = asyncio.create_task(timer.sleep(3600))
        await asyncio.sleep(0)
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        await timer.sleep(5)
    assert timer.monotonic() == 5.0


async def test_an_outer_cancellation_is_not_taken_for_the_limit() -> None:
    timer = VirtualTimer()
    started = asyncio.Event()

    async def limited() -> None:
        async with timer.limit(3600):
            started.set()
            await asyncio.Event().wait()  # busy forever: only a cancellation ends it

    async with asyncio.timeout(BOUND):
        task = asyncio.create_task(limited())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_real_waits_are_cancellable() -> None:
    async with asyncio.timeout(BOUND):
        sleeping = asyncio.create_task(REAL.sleep(3600))
        await asyncio.sleep(0)
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping


def test_timers_cross_into_the_engine_process_as_text() -> None:
    assert timers.describe(REAL) is None
    assert timers.describe(VirtualTimer()) == "virtual"
    assert isinstance(timers.parse("virtual"), VirtualTimer)
    assert isinstance(timers.parse("real"), RealTimer)
    with pytest.raises(ValueError, match="expected real or virtual"):
        timers.parse("fast")


async def test_a_held_task_keeps_time_still_until_it_sleeps() -> None:
    timer = VirtualTimer()
    read = asyncio.Event()
    order: list[tuple[str, float]] = []

    async def run(name: str, work: asyncio.Event | None, wait: float) -> None:
        async with timer.hold():  # a playbook run: its store reads hold time, its waits let it pass
            if work is not None:
                await work.wait()
            await timer.sleep(wait)
            order.append((name, timer.monotonic()))

    async with asyncio.timeout(BOUND):
        slow = asyncio.create_task(run("reads first", read, 60))
        quick = asyncio.create_task(run("waits an hour", None, 3600))
        for _ in range(50):
            await asyncio.sleep(0)
        assert order == [] and timer.monotonic() == 0.0
        read.set()
        await asyncio.gather(slow, quick)
    assert order == [("reads first", 60.0), ("waits an hour", 3600.0)]
