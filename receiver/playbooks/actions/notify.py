"""``notify``: send a message (recorded as not wired yet until notifications land)."""

from __future__ import annotations

from typing import Any, Literal

from receiver.playbooks.actions.base import Action, Context, Done, Inputs, Outcome, Render, StepBase, Template


class Notify(StepBase):
    """Send a message (wired to notifications when they land)."""

    action: Literal["notify"]
    message: Template
    channel: str = "default"


def plan(step: Notify, render: Render) -> dict[str, Any]:
    """The channel and the rendered message."""
    return {"channel": step.channel, "message": render.text(step.message)}


async def execute(context: Context, inputs: Inputs) -> Done:
    """Not wired yet: skipped, and says so."""
    return Done(Outcome.SKIPPED, reason="notifications are not wired yet (a later issue)")


ACTION = Action("notify", Notify, plan, execute, example={"action": "notify", "message": "{{ alert.labels.pod }}"})
