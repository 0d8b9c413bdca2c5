"""The Statuspage channel: a severe incident told to the public on an Atlassian Statuspage page.

Why a channel of its own: customers read the status page, not the on-call channel. So it is told only
what they should know: it is rendered with the external templates (no label values), only incidents at
least as severe as ``min_severity`` open one, and only the signals that change what the page says are
sent (opened, escalated, services joined, acknowledged, mitigated, status updates, resolved, reopened;
never notes, playbook runs or reminders: skipped); a test (``receiver notify test``) posts nothing to a
public page, it reads the page with the key. The receiver's incident maps to one Statuspage incident,
whose id is kept in the delivery thread; the services it spans map to page components, whose status
follows the incident's severity until it resolves.

Creating is the one step that is not idempotent: the new incident carries the receiver's incident id in
its ``metadata``, and a creation a crash interrupted first looks among the page's unresolved incidents
for it (``Replay.RECONCILE``). An update of a known incident may be sent again (``Replay.SAFE``): at
worst the page shows the same update twice.

API: https://developer.statuspage.io/ (incidents, components, pages, ``Authorization: OAuth <key>``, 1
request a second per key, 420 or 429 past it: the rate key is the API key's digest), as
tests/fakes/statuspage.py follows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import pydantic

from receiver.incidents.lifecycle import Signal
from receiver.notify import content, failures
from receiver.notify.channel import Channel, ChannelSettingsBase, ChannelType, Io, Replay
from receiver.notify.channels.endpoint import digest
from receiver.notify.content import Compose, Markup, Message, one_line
from receiver.notify.http import Response, Unreachable
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent, Skipped

MAX_NAME = 255
MAX_BODY = 25000
MIN_INTERVAL = 1.0
"""Statuspage allows each API key 1 request a second (over a rolling minute)."""
MARK = "receiver"
TESTED = "authenticated; nothing posted (a status page is public)"
NO_DESTINATION = "a statuspage channel takes no destination: configure one channel per page"
"""The key of the incident's ``metadata`` object that names the receiver's incident."""

Severity = Literal["SEV1", "SEV2", "SEV3", "SEV4"]
ComponentStatus = Literal["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"]
DEFAULT_COMPONENT_STATUS: dict[Severity, ComponentStatus] = {
    "SEV1": "major_outage",
    "SEV2": "partial_outage",
    "SEV3": "degraded_performance",
    "SEV4": "degraded_performance",
}
CREATES = frozenset({Signal.OPENED, Signal.ESCALATED, Signal.REOPENED})
"""Signals that open a Statuspage incident when the thread has none (and the incident is severe enough)."""
UPDATES: Mapping[Signal, Mapping[str, Any]] = {
    Signal.ACKNOWLEDGED: {"status": "identified"},
    Signal.MITIGATED: {"status": "monitoring"},
    Signal.STATUS_UPDATE: {},
    Signal.OPENED: {},
    Signal.ESCALATED: {},
    Signal.SERVICES_JOINED: {},
    Signal.RESOLVED: {"status": "resolved"},
    Signal.REOPENED: {"status": "investigating"},
}
"""What each signal sets on a known incident, besides its body and (but for status updates) components."""
KEEPS_COMPONENTS = frozenset({Signal.STATUS_UPDATE, Signal.ACKNOWLEDGED, Signal.MITIGATED})

_ID = re.compile(r"[A-Za-z0-9]+")


def _id(text: str) -> str:
    if not _ID.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not a Statuspage id (letters and digits)")
    return text


def _api_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("api_url must be an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("api_url must be https (the API key travels in it) unless it is on this machine")
    return text.rstrip("/")


def _not_blank(value: pydantic.SecretStr) -> pydantic.SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("an empty api_key is refused")
    return value


Id = Annotated[str, pydantic.AfterValidator(_id)]


class StatuspageSettings(ChannelSettingsBase):
    """``notify.channels.<name>`` with ``type: statuspage``: a page, its API key, which components to set."""

    type: Literal["statuspage"]
    api_url: Annotated[str, pydantic.AfterValidator(_api_url)] = "https://api.statuspage.io/v1"
    page_id: Id
    api_key: Annotated[pydantic.SecretStr, pydantic.AfterValidator(_not_blank)]
    """Sent as ``Authorization: OAuth <key>``; never shown in a failure."""
    min_severity: Severity = "SEV1"
    """Incidents less severe than this never reach the page."""
    components: dict[str, Id] = pydantic.Field(default_factory=dict)
    """A service as the incident names it (``shop/web``) -> the page component it affects."""
    component_status: dict[Severity, ComponentStatus] = pydantic.Field(
        default_factory=lambda: dict(DEFAULT_COMPONENT_STATUS)
    )
    """The status an affected component shows at each severity (those not given keep their default)."""

    @pydantic.field_validator("component_status", mode="after")
    @classmethod
    def _with_defaults(cls, value: dict[Severity, ComponentStatus]) -> dict[Severity, ComponentStatus]:
        return DEFAULT_COMPONENT_STATUS | value


# -- what to send: pure ---------------------------------------------------------------------------------


def rank(severity: str) -> int:
    """1 for SEV1 (the worst) .. 4; 99 for an unclassified incident. Pure."""
    return int(severity[3:]) if re.fullmatch(r"SEV[1-4]", severity) else 99


@dataclass(frozen=True, slots=True)
class Call:
    """A request to the page's API: method, path under ``/pages/{page_id}``, the ``incident`` object."""

    method: Literal["POST", "PATCH"]
    path: str
    incident: Mapping[str, Any] = field(default_factory=dict)


def components(settings: StatuspageSettings, message: Message, status: str | None) -> dict[str, Any]:
    """The ``component_ids`` and ``components`` fields for the incident's mapped services. Pure."""
    ids = list(dict.fromkeys(settings.components[s] for s in message.services if s in settings.components))
    if not ids:
        return {}
    fields: dict[str, Any] = {"component_ids": ids}
    if status is not None:
        fields["components"] = dict.fromkeys(ids, status)
    return fields


def _status_of(settings: StatuspageSettings, severity: str) -> str | None:
    return {str(k): v for k, v in settings.component_status.items()}.get(severity)


def _body(message: Message) -> dict[str, str]:
    return {"body": message.body} if message.body.strip() else {}


def name(message: Message) -> str:
    """The public incident's name: the external summary (else title) on one line, within Statuspage's limit. Pure."""
    return one_line(message.summary or message.title, MAX_NAME) or "Service disruption"


def creation(settings: StatuspageSettings, message: Message, incident: str) -> Call:
    """A new Statuspage incident for the receiver's ``incident``, named in its metadata. Pure."""
    fields = {
        "name": name(message),
        "status": "investigating",
        **_body(message),
        **components(settings, message, _status_of(settings, message.severity)),
        "metadata": {MARK: {"incident": incident}},
    }
    return Call("POST", "/incidents", fields)


def update(settings: StatuspageSettings, signal: Signal, message: Message, known: str) -> Call | Skipped:
    """The change ``signal`` makes to the known Statuspage incident ``known``. Pure."""
    status = "operational" if signal is Signal.RESOLVED else _status_of(settings, message.severity)
    parts = {} if signal in KEEPS_COMPONENTS else components(settings, message, status)
    fields = {**UPDATES[signal], **_body(message), **parts}
    if not fields:
        return Skipped("nothing to change on the page: no text and no component")
    return Call("PATCH", f"/incidents/{known}", fields)


def decide(settings: StatuspageSettings, delivery: Delivery, message: Message) -> Call | Skipped:
    """What this delivery does on the page: create, update, or nothing (and why). Pure."""
    known = delivery.thread.get("incident")
    if known:
        return update(settings, delivery.signal, message, known)
    if delivery.signal not in CREATES:
        return Skipped("no Statuspage incident for it: it was never severe enough to open one")
    if rank(message.severity) > rank(settings.min_severity):
        return Skipped(f"{message.severity or 'unclassified'} is less severe than min_severity {settings.min_severity}")
    return creation(settings, message, delivery.incident)


def marked(found: object, incident: str) -> str | None:
    """The id of the listed Statuspage incident whose metadata names ``incident``; None if none does. Pure."""
    for listed in found if isinstance(found, list) else []:
        metadata = listed.get("metadata") if isinstance(listed, dict) else None
        mark = metadata.get(MARK) if isinstance(metadata, dict) else None
        if isinstance(mark, dict) and mark.get("incident") == incident and isinstance(listed.get("id"), str):
            return str(listed["id"])
    return None


# -- what an answer means: pure -------------------------------------------------------------------------


def _words(answer: Response, secret: str) -> str:
    """What Statuspage said (its ``{"message": ...}``), short, on one line, without the key."""
    said = answer.json()
    text = str(said.get("message") or said.get("error") or "") if isinstance(said, dict) else answer.text(300)
    return one_line(text.replace(secret, "***"), 300) if secret else one_line(text, 300)


def failure(answer: Response, missing: str, secret: str, now: datetime) -> Failed | None:
    """The failure an answer means (None for 2xx); ``missing`` says what a 404 means here. Pure."""
    words = _words(answer, secret)
    if answer.status in (420, 429):
        wait = failures.retry_after(answer.headers, now)
        return Failed(Reason.RATE_LIMITED, f"HTTP {answer.status}: {words}", MIN_INTERVAL if wait is None else wait)
    if answer.status == 404:
        return Failed(Reason.CLIENT_ERROR, f"HTTP 404: {missing}", permanent=True)
    return failures.of_status(answer.status, answer.headers, words, now)


def _missing(call: Call, page: str) -> str:
    """What a 404 to ``call`` means."""
    if call.method == "PATCH":
        known = call.path.rsplit("/", 1)[-1]
        return f"the Statuspage incident {known} no longer exists (deleted at Statuspage?): not re-created"
    return f"no page {page} (page_id)"


# -- the channel ----------------------------------------------------------------------------------------


class StatuspageChannel:
    """One Statuspage page, told of severe incidents in its own words."""

    kind = "statuspage"
    audience: content.Audience = "external"

    def __init__(self, name: str, settings: StatuspageSettings) -> None:
        self.name = name
        self.settings = settings

    def __repr__(self) -> str:
        return f"StatuspageChannel({self.name!r}, page {self.settings.page_id})"

    def replay(self, delivery: Delivery) -> Replay:
        """Creating: look for what was created first. Updating a known incident: safe to send again."""
        creating = not delivery.thread.get("incident") and delivery.signal in CREATES
        return Replay.RECONCILE if creating else Replay.SAFE

    def wants(self, signal: Signal) -> bool:
        """What changes the public page, and a test (which reads it); never internal chatter (notes, runs,
        reminders, alert churn)."""
        return signal in UPDATES or signal is Signal.TEST

    def rate_key(self, delivery: Delivery) -> str:
        """The API key, by a digest (Statuspage limits each key, whatever pages it writes to)."""
        return digest(f"{self.settings.api_url} {self._secret()}")

    def destination_problem(self, destination: str) -> str | None:
        """None is one: the page and its key are the channel's settings."""
        return NO_DESTINATION if destination else None

    def min_interval(self) -> float:
        """1 request a second."""
        return MIN_INTERVAL

    def plan(self, delivery: Delivery, compose: Compose) -> Call | Skipped:
        """What ``send`` would do, with the body within Statuspage's limit."""
        if not self.wants(delivery.signal) or delivery.signal is Signal.TEST:
            return Skipped(f"nothing is posted to a status page for {delivery.signal.value}")
        message = content.fit(compose, Markup.PLAIN, lambda m: m, lambda m: len(m.body), MAX_BODY)
        return decide(self.settings, delivery, message)

    def preview(self, delivery: Delivery, compose: Compose) -> Mapping[str, Any]:
        """The request ``send`` would make (without the key), or why it would make none."""
        if delivery.signal is Signal.TEST:
            return {"method": "GET", "url": self._url(""), "note": TESTED}
        planned = self.plan(delivery, compose)
        if isinstance(planned, Skipped):
            return {"skipped": planned.why}
        return {"method": planned.method, "url": self._url(planned.path), "json": {"incident": planned.incident}}

    async def send(self, delivery: Delivery, compose: Compose, io: Io) -> Result:
        """One request (two when reconciling a creation a crash interrupted); a test reads the page."""
        if delivery.target.destination:
            return Failed(Reason.CLIENT_ERROR, NO_DESTINATION, permanent=True)
        if delivery.signal is Signal.TEST:
            return await self._check(io)
        planned = self.plan(delivery, compose)
        if isinstance(planned, Skipped):
            return planned
        if delivery.resumed and planned.method == "POST":
            found = await self._created_before(delivery, io)
            if found is not None:
                return found
        return await self._call(planned, io)

    async def _check(self, io: Io) -> Result:
        """A test: the page read with the key (``GET /pages/{page_id}``); nothing is posted to a public page."""
        try:
            answer = await io.http.request("GET", self._url(""), headers=self._auth())
        except Unreachable as err:
            return Failed(err.reason, str(err))
        failed = failure(answer, f"no page {self.settings.page_id} (page_id)", self._secret(), io.clock())
        return failed or Sent(self.settings.page_id, note=TESTED)

    async def _created_before(self, delivery: Delivery, io: Io) -> Result | None:
        """The incident an interrupted creation made, if the page's unresolved incidents hold it."""
        url = self._url("/incidents/unresolved")
        try:
            answer = await io.http.request("GET", url, headers=self._auth(), params={"limit": "100"})
        except Unreachable as err:
            return Failed(err.reason, str(err))
        failed = failure(answer, f"no page {self.settings.page_id} (page_id)", self._secret(), io.clock())
        if failed is not None:
            return failed
        known = marked(answer.json(), delivery.incident)
        if known is None:
            return None
        return Sent(known, {"incident": known}, note="found the Statuspage incident created before the crash")

    async def _call(self, call: Call, io: Io) -> Result:
        try:
            answer = await io.http.request(
                call.method, self._url(call.path), json={"incident": call.incident}, headers=self._auth()
            )
        except Unreachable as err:
            return Failed(err.reason, str(err), maybe_sent=err.maybe_sent)
        failed = failure(answer, _missing(call, self.settings.page_id), self._secret(), io.clock())
        if failed is not None:
            return failed
        return _done(call, answer)

    def _url(self, path: str) -> str:
        return f"{self.settings.api_url}/pages/{self.settings.page_id}{path}"

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"OAuth {self._secret()}"}

    def _secret(self) -> str:
        return self.settings.api_key.get_secret_value()


def _done(call: Call, answer: Response) -> Result:
    """A 2xx answer: the incident it names, kept in the thread when it was just created."""
    said = answer.json()
    known = said.get("id") if isinstance(said, dict) else None
    if not isinstance(known, str) or not known:
        return Failed(Reason.SERVER_ERROR, f"HTTP {answer.status} without an incident id")
    return Sent(known, {"incident": known} if call.method == "POST" else {})


def build(name: str, settings: StatuspageSettings) -> Channel:
    """The Statuspage channel ``settings`` describe."""
    return StatuspageChannel(name, settings)


TYPE = ChannelType("statuspage", StatuspageSettings, build)
