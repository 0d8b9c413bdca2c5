"""``wait``: wait a while, e.g. to see whether the alert resolves after the previous step."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from receiver.durations import Duration
from receiver.playbooks.actions.base import Action, Context, Done, Inputs, Outcome, Render, StepBase


class Wait(StepBase):
    """Wait, e.g. to see whether the alert resolves after the previous step."""

    action: Literal["wait"]
    duration: Duration


def plan(step: Wait, render: Render) -> dict[str, Any]:
    """How long, in seconds."""
    return {"seconds": step.duration.total_seconds()}


async def execute(context: Context, inputs: Inputs) -> Done:
    """Sleep."""
    await asyncio.sleep(float(inputs["seconds"]))
    return Done(Outcome.SUCCEEDED)


ACTION = Action("wait", Wait, plan, execute, example={"action": "wait", "duration": "2m"})
