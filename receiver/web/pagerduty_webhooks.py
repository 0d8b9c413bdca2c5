"""``POST /api/v1/pagerduty/webhooks``: PagerDuty's v3 webhooks, so an incident acknowledged or resolved there is here.

A request counts only if one of its ``X-PagerDuty-Signature`` signatures matches a configured webhook
secret (401 otherwise, and nothing changes); ``receiver.notify.pagerduty_webhooks`` reads the event.
An acknowledgement or resolution of one of our incidents runs the command the API would run, as
``pagerduty: <who>``. Everything else is answered 200 and changes nothing: another event type, an
incident that is not ours or that we do not know (logged), a change already made (the echo of our
own acknowledge). PagerDuty retries what is not answered 2xx, so only a change the engine could not
take now is answered 503, to come again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from aiohttp import web

from receiver.engine.process import EngineUnavailable
from receiver.incidents.book import UnknownIncident
from receiver.incidents.lifecycle import InvalidTransition
from receiver.notify.pagerduty_webhooks import Change, Ignored, event, forged
from receiver.store import StoreError
from receiver.web.errors import json_error, unavailable
from receiver.web.incidents_api import IncidentCommands

log = logging.getLogger(__name__)
NOT_CONFIGURED = "PagerDuty webhooks are not configured: set webhook_secret on a PagerDuty channel"


class PagerDutyWebhooks:
    """The handler of PagerDuty's webhook requests."""

    def __init__(self, secrets: Sequence[str], people: Mapping[str, str], commands: IncidentCommands) -> None:
        """``secrets``: the webhook subscriptions' secrets; ``people``: PagerDuty user id -> person."""
        self._secrets = tuple(secrets)
        self._people = people
        self._commands = commands

    async def handle(self, request: web.Request) -> web.Response:
        """Check a signature on the raw body, then follow the event."""
        if not self._secrets:
            return json_error(403, NOT_CONFIGURED)
        body = await request.read()
        problem = forged(self._secrets, request.headers.get("X-PagerDuty-Signature"), body)
        if problem is not None:
            log.warning("a PagerDuty webhook was refused", extra={"reason": problem, "peer": request.remote})
            return json_error(401, problem)
        try:
            found = event(body, self._people)
        except ValueError as err:
            return json_error(400, str(err))
        if isinstance(found, Ignored):
            log.info("a PagerDuty webhook changes nothing", extra={"reason": found.why})
            return _answer("ignored", found.why)
        return await self._follow(found)

    async def _follow(self, change: Change) -> web.Response:
        command = self._commands.acknowledge if change.op == "acknowledge" else self._commands.resolve
        extra = {"incident": change.incident, "op": change.op, "actor": change.actor}
        try:
            await command(change.incident, change.actor, change.reason)
        except UnknownIncident:
            log.warning("a PagerDuty webhook names an incident we do not know", extra=extra)
            return _answer("ignored", f"no incident {change.incident}")
        except InvalidTransition as err:
            return _answer("unchanged", str(err))
        except (EngineUnavailable, StoreError) as err:
            return unavailable(err)
        log.info("PagerDuty %sd incident %s", change.op, change.incident, extra=extra)
        return _answer("applied", change.reason, incident=change.incident)


def _answer(result: str, reason: str, **more: str) -> web.Response:
    return web.json_response({"result": result, "reason": reason, **more})
