"""``wait_for_resolution``: wait for the alert to resolve; the playbook ends as a success if it does in time.

Reaching the step's ``timeout`` is no fault: the next steps decide what a
still-firing alert needs (``when: alert.status == "firing"``). Its timeout is
its waiting time, so it cannot be too short to finish. It polls on the
executor's timer.
"""

from __future__ import annotations

from typing import Any, Literal

from receiver.playbooks.actions.base import Action, Context, Done, Inputs, Outcome, Render, StepBase


class WaitForResolution(StepBase):
    """Wait for the alert to resolve: the playbook ends as a success if it does within ``timeout``."""

    action: Literal["wait_for_resolution"]


def plan(step: WaitForResolution, render: Render) -> dict[str, Any]:
    """Nothing to render."""
    return {}


async def execute(context: Context, inputs: Inputs) -> Done:
    """Ask whether the alert still fires until it does not (the step's time limit bounds it)."""
    while await context.still_firing():
        await context.timer.sleep(context.poll_seconds)
    return Done(Outcome.RESOLVED, reason="the alert resolved")


ACTION = Action(
    "wait_for_resolution",
    WaitForResolution,
    plan,
    execute,
    ends_at_timeout=True,
    example={"action": "wait_for_resolution", "timeout": "5m"},
)
