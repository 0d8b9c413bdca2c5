"""``notify``: send a message to a notification channel of the run's incident, through the outbox.

``channel`` names a channel of ``notify.channels`` (or ``name:destination``); ``default`` sends to every
channel the incident was routed to. The step is done once the message is written to the outbox, in the
incident's transaction: the sender delivers it (and retries it) like any other notification.
"""

from __future__ import annotations

from typing import Any, Literal

from receiver.playbooks.actions.base import Action, Context, Done, Inputs, Outcome, Render, StepBase, Template


class Notify(StepBase):
    """Send a message to a channel of the incident (``default``: all of them)."""

    action: Literal["notify"]
    message: Template
    channel: str = "default"


def plan(step: Notify, render: Render) -> dict[str, Any]:
    """The channel and the rendered message."""
    return {"channel": step.channel, "message": render.text(step.message)}


async def execute(context: Context, inputs: Inputs) -> Done:
    """Write the message to the outbox; skipped when no notification channel is configured."""
    if context.tell is None:
        return Done(Outcome.SKIPPED, reason="no notification channel is configured (notify.channels)")
    channel = str(inputs["channel"])
    written = await context.tell(channel, str(inputs["message"]))
    if not written:
        why = "no channel of the incident takes it" if channel == "default" else "not a channel taking it"
        return Done(Outcome.SKIPPED, reason=f"nothing sent to {channel}: {why}")
    return Done(Outcome.SUCCEEDED, reason=f"written to the outbox for {channel} ({written} notification(s))")


ACTION = Action("notify", Notify, plan, execute, example={"action": "notify", "message": "{{ alert.labels.pod }}"})
