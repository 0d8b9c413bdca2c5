"""``POST /api/v1/slack/interactions``: the clicks on the buttons of our Slack messages.

The Slack app's Interactivity Request URL points here. A request counts only if Slack signed it with
a configured signing secret within the last five minutes (``receiver.notify.slack_actions`` decides;
401 naming why otherwise, and nothing changes). Each button becomes the command the API would run
(``IncidentCommands``, ``RunCommands``): the engine stays the one writer. Slack wants an answer
within 3 seconds and does not retry: a change still under way after ``ANSWER_WITHIN`` carries on and
the click is answered at once. What the clicking user should hear (refused, unknown, already done)
is an ephemeral message, in the answer and posted to the interaction's ``response_url`` (Slack shows
what is posted there; its hooks host only, or a configured channel's API origin); a click that did
what it asked is answered with an empty 200, and the incident's message shows the change when the
channel edits it. Socket Mode (``receiver.web.slack_socket``) hands its clicks to ``act`` as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from receiver.clock import Clock
from receiver.engine.process import EngineUnavailable
from receiver.engine.runner import RunConflict, UnknownRun
from receiver.incidents.book import UnknownIncident
from receiver.incidents.lifecycle import InvalidTransition
from receiver.notify import escaping
from receiver.notify.content import Markup
from receiver.notify.http import Http, Unreachable
from receiver.notify.slack_actions import Command, Interaction, Op, Refusal, answerable, decide, forged, interaction
from receiver.store import StoreError
from receiver.web.errors import json_error
from receiver.web.incidents_api import IncidentCommands
from receiver.web.runs_api import RunCommands

log = logging.getLogger(__name__)
ANSWER_WITHIN = 2.0
"""Seconds a click waits for its change before it is answered anyway (Slack gives up after 3)."""
NOT_CONFIGURED = "Slack interactivity is not configured: set signing_secret on a Slack channel (README: Slack buttons)"
Respond = Callable[[str, Mapping[str, Any]], Awaitable[None]]
"""Posts an answer to an interaction's ``response_url``."""
DONE = {Op.ACKNOWLEDGE: "acknowledged", Op.RESOLVE: "resolved", Op.APPROVE: "approved", Op.REJECT: "rejected"}


class SlackInteractions:
    """The handler of Slack's interaction requests."""

    def __init__(
        self,
        secrets: Sequence[str],
        people: Mapping[str, str],
        commands: IncidentCommands,
        runs: RunCommands,
        clock: Clock,
        answer_within: float = ANSWER_WITHIN,
        respond: Respond | None = None,
        origins: Sequence[str] = (),
    ) -> None:
        """``secrets``: the signing secrets of the interactive channels; ``people``: Slack user id -> person;
        ``respond`` posts to a ``response_url`` (on Slack's hooks host, or under one of ``origins``)."""
        self._secrets = tuple(secrets)
        self._respond = respond
        self._origins = tuple(origins)
        self._people = people
        self._clock = clock
        self._answer_within = answer_within
        self._ops: Mapping[Op, Callable[[str, str, str], Awaitable[None]]] = {
            Op.ACKNOWLEDGE: commands.acknowledge,
            Op.RESOLVE: commands.resolve,
            Op.APPROVE: runs.approve,
            Op.REJECT: runs.reject,
        }
        self._under_way: set[asyncio.Task[Any]] = set()

    async def handle(self, request: web.Request) -> web.Response:
        """Check the signature on the raw body, then carry out each button's command."""
        if not self._secrets:
            return json_error(403, NOT_CONFIGURED)
        body = await request.read()
        timestamp, signed = request.headers.get("X-Slack-Request-Timestamp"), request.headers.get("X-Slack-Signature")
        problem = forged(self._secrets, timestamp, signed, body, self._clock())
        if problem is not None:
            log.warning("a Slack interaction was refused", extra={"reason": problem, "peer": request.remote})
            return json_error(401, problem)
        try:
            clicked = interaction(body)
        except ValueError as err:
            return json_error(400, str(err))
        if clicked is None:
            return _taken()  # another kind of interaction: nothing of ours to do
        text = await self.act(clicked)
        if not text:
            return _taken()
        return web.json_response({"response_type": "ephemeral", "replace_original": False, "text": text})

    async def act(self, clicked: Interaction) -> str:
        """Carry out each button of ``clicked``; what the clicking user should hear (empty: all done as asked),
        also posted to its ``response_url``. Shared by the HTTP endpoint and Socket Mode."""
        said = [await self._carry_out(d) for d in decide(clicked, self._people)]
        text = "\n".join(escaping.escape(s, Markup.SLACK) for s in said if s)
        if text and self._respond is not None and answerable(clicked.response_url, self._origins):
            answer = {"response_type": "ephemeral", "replace_original": False, "text": text}
            self._background(self._respond(clicked.response_url, answer), "slack response_url")
        return text

    def _background(self, work: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._under_way.add(task)
        task.add_done_callback(self._under_way.discard)
        return task

    async def _carry_out(self, decision: Command | Refusal) -> str:
        """What the clicking user is told of one button (empty: done as asked)."""
        if isinstance(decision, Refusal):
            log.info("a Slack button was refused", extra={"reason": decision.why})
            return decision.why
        task = self._background(self._command(decision), f"slack {decision.op.value} {decision.target}")
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._answer_within)
        except TimeoutError:
            return f"{decision.target}: still being {DONE[decision.op]}; the message shows it when done"

    async def _command(self, command: Command) -> str:
        what = "run" if command.op.on_run else "incident"
        extra = {"op": command.op.value, "target": command.target, "actor": command.actor}
        try:
            await self._ops[command.op](command.target, command.actor, f"{DONE[command.op]} in Slack")
        except (UnknownIncident, UnknownRun):
            return f"no {what} {command.target}"
        except (InvalidTransition, RunConflict) as err:
            return f"{command.target}: {err}"
        except (EngineUnavailable, StoreError) as err:
            log.warning("a Slack button's change was not made", extra={**extra, "error": str(err)})
            return f"{command.target} was not {DONE[command.op]}: the receiver cannot take changes now; try again"
        log.info("a Slack button changed %s %s", what, command.target, extra=extra)
        return ""


def _taken() -> web.Response:
    """Slack's acknowledgement: 200, nothing to say."""
    return web.Response(status=200, text="", content_type="text/plain")


class ResponseUrl:
    """Posts answers to interactions' ``response_url`` (what the clicking user alone sees); failures are logged."""

    def __init__(self, http: Http) -> None:
        self._http = http

    async def __call__(self, url: str, answer: Mapping[str, Any]) -> None:
        try:
            response = await self._http.request("POST", url, json=dict(answer))
        except Unreachable as err:
            log.warning("an answer to a Slack click was not delivered", extra={"error": str(err)})
            return
        if response.status >= 300:
            log.warning("Slack refused an answer to a click", extra={"status": response.status})
