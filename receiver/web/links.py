"""Signed acknowledge/resolve links: a page that asks, a POST that acts, the link itself the credential.

``GET /links/{token}`` shows the incident and a button; only ``POST /links/{token}`` changes anything,
so a chat's link preview or a mail scanner following the link does nothing. The token
(``receiver.oncall.links``) names the incident, the action and the actor: the change goes to the
engine through ``IncidentCommands`` as that actor, with the reason ``via signed link``, exactly like the
incident API's (one process or web and engine apart). No API token is asked: a forged, altered,
malformed or expired token is refused with 403 and nothing is read or changed; an unknown incident is
404; acting on an incident already acknowledged or resolved says so (200), so a second tap is
harmless. Pages are plain HTML with no script, every value escaped, never cached, never framed, and
sent with ``Referrer-Policy: no-referrer`` (the token is in the address).
"""

from __future__ import annotations

import html
import logging

from aiohttp import web

from receiver.clock import Clock
from receiver.engine.process import EngineUnavailable
from receiver.incidents.book import Incident, UnknownIncident
from receiver.incidents.lifecycle import IncidentStatus, InvalidTransition
from receiver.oncall.links import Action, Claim, Keyring, Refused
from receiver.store import IncidentStore, StoreError
from receiver.web.errors import public_reason
from receiver.web.incidents_api import IncidentCommands

log = logging.getLogger(__name__)
REASON = "via signed link"
"""The reason the timeline shows for a change made through a link."""
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
"""Every links page: the token must not leak through caches or referrers, nor the button be framed."""
_DONE = {
    Action.ACKNOWLEDGE: frozenset({IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED, IncidentStatus.RESOLVED}),
    Action.RESOLVE: frozenset({IncidentStatus.RESOLVED}),
}
"""The statuses in which a link's action has nothing left to do."""
_PAST = {Action.ACKNOWLEDGE: "acknowledged", Action.RESOLVE: "resolved"}


class LinkPages:
    """The handlers of ``/links/{token}``; without a keyring (no ``oncall.links.secret``) every link is 404."""

    def __init__(self, store: IncidentStore, commands: IncidentCommands, keyring: Keyring | None, clock: Clock) -> None:
        self._store = store
        self._commands = commands
        self._keyring = keyring
        self._clock = clock

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the confirmation page and the action."""
        router.add_get("/links/{token}", self.confirm)
        router.add_post("/links/{token}", self.act)

    async def confirm(self, request: web.Request) -> web.Response:
        """The incident and a button that acts; nothing changes."""
        found = await self._pending(request)
        if isinstance(found, web.Response):
            return found
        claim, incident = found
        return page(200, f"{claim.action.label} {incident.id}?", _facts(incident) + _form(claim))

    async def act(self, request: web.Request) -> web.Response:
        """Acknowledge or resolve as the link's actor; a repeat (or a change made meanwhile) says so."""
        found = await self._pending(request)
        if isinstance(found, web.Response):
            return found
        claim, incident = found
        command = self._commands.acknowledge if claim.action is Action.ACKNOWLEDGE else self._commands.resolve
        try:
            await command(claim.incident, claim.actor, REASON)
        except UnknownIncident:
            return _unknown(claim.incident)
        except InvalidTransition:  # changed since it was read: tell what it is now
            now = await self._still_to_do(claim)
            return now if isinstance(now, web.Response) else _impossible(*now)
        except (EngineUnavailable, StoreError) as err:
            return _unavailable(err)
        done = f"{html.escape(incident.id)} is {_PAST[claim.action]} by {html.escape(claim.actor)}."
        return page(200, f"{_PAST[claim.action].capitalize()} {incident.id}", f"<p>{done}</p>")

    async def _pending(self, request: web.Request) -> tuple[Claim, Incident] | web.Response:
        """The token's claim and its incident while its action is still to do, else the page to answer."""
        if self._keyring is None:
            return page(404, "Links are off", "<p>This receiver does not accept signed links.</p>")
        claim = self._keyring.verify(request.match_info["token"], self._clock())
        if isinstance(claim, Refused):
            log.info("a signed link was refused", extra={"why": claim.why.value})
            return page(403, "Link refused", f"<p>{html.escape(claim.message)}. Nothing was changed.</p>")
        return await self._still_to_do(claim)

    async def _still_to_do(self, claim: Claim) -> tuple[Claim, Incident] | web.Response:
        """The claim and its incident as it is now while the action is still to do, else the page to answer."""
        try:
            found = await self._store.incident(claim.incident, 0)
        except StoreError as err:
            return _unavailable(err)
        if found is None:
            return _unknown(claim.incident)
        incident = found[0]
        return _already(claim, incident) if incident.status in _DONE[claim.action] else (claim, incident)


def page(status: int, title: str, body: str) -> web.Response:
    """A links page: ``title`` is text (escaped here), ``body`` HTML whose values the caller escaped."""
    text = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:40em;line-height:1.4}"
        "button{font-size:1.3em;padding:.6em 1.4em}dt{font-weight:bold}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8", headers=HEADERS)


def _facts(incident: Incident) -> str:
    severity = str(incident.severity) if incident.severity else "unclassified"
    rows = (("Incident", incident.id), ("Title", incident.title), ("Severity", severity), ("Status", incident.status))
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{html.escape(str(v))}</dd>" for k, v in rows) + "</dl>"


def _form(claim: Claim) -> str:
    who = html.escape(claim.actor)
    return (
        f"<p>You act as <strong>{who}</strong>; the timeline will say so.</p>"
        f'<form method="post"><button type="submit">{claim.action.label}</button></form>'
    )


def _already(claim: Claim, incident: Incident) -> web.Response:
    said = f"<p>{html.escape(incident.id)} is already {html.escape(incident.status.value)}: nothing was changed.</p>"
    return page(200, f"Already {incident.status.value}", said + _facts(incident))


def _impossible(claim: Claim, incident: Incident) -> web.Response:
    why = f"{html.escape(incident.id)} is {html.escape(incident.status.value)}: it cannot be {_PAST[claim.action]}."
    return page(409, "Nothing to do", f"<p>{why}</p>" + _facts(incident))


def _unknown(id: str) -> web.Response:
    return page(404, "No such incident", f"<p>There is no incident {html.escape(id)}.</p>")


def _unavailable(err: BaseException) -> web.Response:
    log.warning("a signed link was not acted on", extra={"error": str(err), "kind": type(err).__name__})
    response = page(503, "Try again", f"<p>Nothing was changed: {html.escape(public_reason(err))}.</p>")
    response.headers["Retry-After"] = "1"
    return response
