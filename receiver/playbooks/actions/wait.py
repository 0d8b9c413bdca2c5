"""``wait``: wait a while, e.g. to see whether the alert resolves after the previous step.

Its step's time limit follows from its duration (the duration plus a margin,
see ``StepBase``); a ``timeout`` no longer than the duration rejects the
file, since the step could never finish. It sleeps on the executor's timer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from receiver.durations import Duration, parse_duration
from receiver.playbooks.actions.base import Action, Context, Done, Inputs, Outcome, Render, StepBase


class Wait(StepBase):
    """Wait, e.g. to see whether the alert resolves after the previous step."""

    action: Literal["wait"]
    duration: Duration
    """How long; the step's timeout defaults to this plus 10s."""

    @classmethod
    def least_time_of(cls, raw: Mapping[str, Any]) -> timedelta | None:
        """Its duration, if it is one."""
        try:
            return parse_duration(raw.get("duration"))
        except ValueError:
            return None  # the field's own validation says what is wrong

    def least_time(self) -> timedelta:
        """Its duration."""
        return self.duration


def plan(step: Wait, render: Render) -> dict[str, Any]:
    """How long, in seconds."""
    return {"seconds": step.duration.total_seconds()}


async def execute(context: Context, inputs: Inputs) -> Done:
    """Sleep on the executor's timer."""
    await context.timer.sleep(float(inputs["seconds"]))
    return Done(Outcome.SUCCEEDED)


ACTION = Action("wait", Wait, plan, execute, example={"action": "wait", "duration": "2m"})
