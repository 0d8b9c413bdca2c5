"""How the engine's workers wait between two looks: until told something changed, or a bounded time passed.

The processor wakes the runner, the evidence worker and the sender when it commits; the bound is their
safety net (a wake-up lost to a failed write, a deadline that comes due), never how they pace work.
"""

from __future__ import annotations

import asyncio
import contextlib


async def woken(event: asyncio.Event, seconds: float) -> None:
    """Wait until ``event`` is set or ``seconds`` pass, then clear it for the next wait."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    event.clear()
