"""The escalation loop: fires escalation steps when their deadlines come, and sleeps until the next one.

The deadlines live in the store (written with the changes that set them) and in the processor's
escalator, loaded with the book. The loop asks the processor to fire what is due, then waits until the
earliest deadline, or until the processor says an escalation started or moved. The bound on the wait
is a safety net, never the pace: a step fires within one cycle of its deadline. A failure ends the loop;
the engine starts it again, counted and logged (``Engine._supervised``).
"""

from __future__ import annotations

from receiver.clock import Clock
from receiver.engine.processor import Processor
from receiver.engine.waking import woken

BOUND_SECONDS = 30.0
"""The longest wait between two looks at the deadlines."""


async def escalation_loop(processor: Processor, clock: Clock, bound: float = BOUND_SECONDS) -> None:
    """Fire due steps, then wait for the next deadline, until cancelled."""
    while True:
        await processor.escalate(clock())
        await woken(processor.paging, wait_seconds(processor, clock, bound))


def wait_seconds(processor: Processor, clock: Clock, bound: float) -> float:
    """Seconds until the earliest deadline (0: one is due), at most ``bound``."""
    due = processor.next_escalation()
    if due is None:
        return bound
    return min(bound, max(0.0, (due - clock()).total_seconds()))
