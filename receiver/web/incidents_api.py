"""The incident API: list and read incidents, their evidence and notifications; act on them, post status updates.

Reads come from the store. Changes go to the engine, the one writer of
incidents (``IncidentCommands``: the processor inline, or the engine process
through its pipe), and are answered once committed. Changing anything needs
the API token, which must be configured and differ from the webhook's
credentials: a leaked Alertmanager config must not be able to resolve
incidents. Every error is JSON: 400 bad input, 401 credentials, 403 changes
not enabled, 404 unknown incident (or an id that cannot be one, without
asking the store or the engine), 409 impossible transition, 503 engine
unavailable. Inputs are parsed and bounded in ``receiver.web.params``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from receiver.engine.process import EngineUnavailable
from receiver.evidence.records import EvidenceRecord
from receiver.incidents.book import Incident, Member, UnknownIncident
from receiver.incidents.lifecycle import IncidentStatus, InvalidTransition, TimelineEvent
from receiver.incidents.severity import Severity
from receiver.notify.model import NotificationRecord, State
from receiver.store import EvidenceStore, IncidentQuery, IncidentStore, OutboxStore, StoreError
from receiver.web.auth import Credentials, unauthorized
from receiver.web.errors import json_error, unavailable
from receiver.web.params import MAX_ACTOR as MAX_ACTOR  # the limits, where they were first defined
from receiver.web.params import MAX_TEXT as MAX_TEXT
from receiver.web.params import change_body, cursor, incident_id, int_param

MAX_LIMIT = 500
MAX_NOTIFICATIONS = 500
"""Most notifications an incident's page lists (the newest; ``/api/v1/notifications?incident=`` pages them all)."""
DEFAULT_LIMIT = 50
DEFAULT_TIMELINE = 1000
UNKNOWN = "no such incident"


class IncidentCommands(Protocol):
    """Changes people make to incidents, applied by the engine; each returns once committed."""

    async def acknowledge(self, id: str, actor: str, reason: str) -> None:
        """Acknowledge. UnknownIncident, InvalidTransition, EngineUnavailable, StoreError."""
        ...

    async def mitigate(self, id: str, actor: str, reason: str) -> None:
        """Mark mitigated."""
        ...

    async def resolve(self, id: str, actor: str, reason: str) -> None:
        """Resolve."""
        ...

    async def note(self, id: str, actor: str, text: str) -> None:
        """Add a note to the timeline."""
        ...

    async def update(self, id: str, actor: str, text: str) -> None:
        """Post a status update to every channel of the incident (the update cadence starts over)."""
        ...


Command = Callable[[str, str, str], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


class IncidentsApiStore(IncidentStore, EvidenceStore, OutboxStore, Protocol):
    """What the incident API reads: incidents, their evidence and notifications."""


class IncidentsApi:
    """The handlers of ``/api/v1/incidents``."""

    def __init__(self, store: IncidentsApiStore, commands: IncidentCommands, credentials: Credentials) -> None:
        self._store = store
        self._commands = commands
        self._credentials = credentials

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register every route of the incident API."""
        router.add_get("/api/v1/incidents", self.list)
        router.add_get("/api/v1/incidents/{id}", self.get)
        router.add_get("/api/v1/incidents/{id}/evidence", self.evidence)
        for action, command in (
            ("ack", self._commands.acknowledge),
            ("mitigate", self._commands.mitigate),
            ("resolve", self._commands.resolve),
        ):
            router.add_post(f"/api/v1/incidents/{{id}}/{action}", self._changing(command, "reason", required=False))
        router.add_post("/api/v1/incidents/{id}/notes", self._changing(self._commands.note, "text", required=True))
        router.add_post("/api/v1/incidents/{id}/updates", self._changing(self._commands.update, "text", required=True))
        router.add_get("/api/v1/notifications", self.notifications)

    async def list(self, request: web.Request) -> web.Response:
        """Incidents, newest first, filtered, a page at a time (``next`` is the ``before`` of the next page)."""
        if not self._credentials.allows(request):
            return unauthorized("receiver-api")
        try:
            query = _query(request)
        except ValueError as err:
            return json_error(400, str(err))
        found = await self._store.incidents(query)
        more = len(found) == query.limit
        return web.json_response(
            {"incidents": [_summary(i) for i in found], "next": str(found[-1].seq) if more and found else None}
        )

    async def get(self, request: web.Request) -> web.Response:
        """One incident with its alerts, symptoms and timeline."""
        if not self._credentials.allows(request):
            return unauthorized("receiver-api")
        try:
            limit = int_param(request, "timelineLimit", DEFAULT_TIMELINE, 0, 100_000)
        except ValueError as err:
            return json_error(400, str(err))
        id = incident_id(request)
        return await self._detail(id, limit) if id is not None else json_error(404, UNKNOWN)

    async def evidence(self, request: web.Request) -> web.Response:
        """Everything captured from the cluster for the incident's alerts (content included)."""
        if not self._credentials.allows(request):
            return unauthorized("receiver-api")
        id = incident_id(request)
        found = await self._store.incident(id, 0) if id is not None else None
        if id is None or found is None:
            return json_error(404, f"no incident {id}" if id else UNKNOWN)
        records = await self._store.evidence(id)
        return web.json_response({"evidence": [_evidence(r, content=True) for r in records]})

    async def notifications(self, request: web.Request) -> web.Response:
        """Notifications across incidents, newest first, filtered by ``state`` and ``incident``, a page at a time."""
        if not self._credentials.allows(request):
            return unauthorized("receiver-api")
        try:
            state = _one_choice(request, "state", State)
            limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            before = cursor(request)
        except ValueError as err:
            return json_error(400, str(err))
        incident = request.query.get("incident") or None
        found = await self._store.notifications(incident=incident, state=state, before=before, limit=limit)
        more = len(found) == limit
        return web.json_response(
            {"notifications": [notification(r) for r in found], "next": str(found[-1].id) if more and found else None}
        )

    async def _detail(self, id: str, timeline_limit: int, status: int = 200) -> web.Response:
        found = await self._store.incident(id, timeline_limit)
        if found is None:
            return json_error(404, f"no incident {id}")
        incident, timeline = found
        evidence = [_evidence(r, content=False) for r in await self._store.evidence(id)]
        sent = [notification(r) for r in await self._store.notifications(incident=id, limit=MAX_NOTIFICATIONS)]
        body = _detail(incident, timeline) | {"evidence": evidence, "notifications": sent}
        return web.json_response(body, status=status)

    def _changing(self, command: Command, field: str, *, required: bool) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            refused = refuse_change(self._credentials, request)
            if refused is not None:
                return refused
            try:
                actor, text = await change_body(request, field, required=required)
            except ValueError as err:
                return json_error(400, str(err))
            id = incident_id(request)
            if id is None:
                return json_error(404, UNKNOWN)
            try:
                await command(id, actor, text)
            except UnknownIncident:
                return json_error(404, f"no incident {id}")
            except InvalidTransition as err:
                return json_error(409, str(err))
            except (EngineUnavailable, StoreError) as err:
                return unavailable(err)
            return await self._detail(id, DEFAULT_TIMELINE, status=201 if field == "text" else 200)

        return handle


def refuse_change(credentials: Credentials, request: web.Request) -> web.Response | None:
    """The answer to a change that may not be made (no API token configured, or not presented), else None."""
    if not credentials.required:
        return json_error(403, "changes need an API token: set api.token (RECEIVER_API_TOKEN)")
    if not credentials.allows(request):
        return unauthorized("receiver-api")
    return None


def _query(request: web.Request) -> IncidentQuery:
    statuses = _choices(request, "status", lambda s: IncidentStatus(s), [s.value for s in IncidentStatus])
    severities = _choices(request, "severity", lambda s: Severity[s.upper()], [str(s) for s in Severity])
    before = cursor(request)
    service = request.query.get("service") or None
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return IncidentQuery(statuses, severities, service, before, limit)


def _choices(request: web.Request, name: str, parse: Callable[[str], Any], allowed: list[str]) -> frozenset[Any] | None:
    raw = [s for value in request.query.getall(name, []) for s in value.split(",") if s]
    try:
        return frozenset(parse(s) for s in raw) or None
    except (ValueError, KeyError):
        raise ValueError(f"{name}: must be among {', '.join(allowed)}") from None


def _one_choice(request: web.Request, name: str, kind: type[State]) -> State | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}: must be one of {', '.join(s.value for s in kind)}") from None


def notification(record: NotificationRecord) -> dict[str, Any]:
    """A notification as the API shows it."""
    return {
        "id": record.id,
        "key": record.key,
        "incident": record.incident,
        "event": record.signal.value,
        "channel": record.target.channel,
        "destination": record.target.destination or None,
        "type": record.kind,
        "state": record.state.value,
        "attempts": record.attempts,
        "lastError": record.last_error or None,
        "reason": record.reason.value if record.reason else None,
        "providerId": record.provider_id or None,
        "merged": record.merged,
        "createdAt": _time(record.created_at),
        "nextAttemptAt": _time(record.next_attempt_at),
        "sentAt": _time(record.sent_at),
    }


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _summary(incident: Incident) -> dict[str, Any]:
    life = incident.lifecycle
    c = incident.classification
    return {
        "id": incident.id,
        "title": incident.title,
        "status": life.status.value,
        "severity": str(c.severity) if c else None,
        "severityReasons": list(c.reasons) if c else [],
        "cascade": incident.cascade,
        "scope": incident.scope,
        "services": sorted(incident.services),
        "alertCount": len(incident.members) or incident.stored_members,
        "firing": incident.firing,
        "detectedAt": _time(life.detected_at),
        "acknowledgedAt": _time(life.acknowledged_at),
        "mitigatedAt": _time(life.mitigated_at),
        "resolvedAt": _time(life.resolved_at),
        "lastActivity": _time(incident.last_activity),
    }


def _member(member: Member) -> dict[str, Any]:
    out = {
        "fingerprint": member.fingerprint,
        "labels": dict(member.labels),
        "firing": member.firing,
        "severity": str(member.classification.severity),
        "severityReasons": list(member.classification.reasons),
        "firedAt": _time(member.fired_at),
        "resolvedAt": _time(member.resolved_at),
    }
    if member.root is not None:
        out["root"] = member.root
    return out


def _event(event: TimelineEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "kind": event.kind.value,
        "text": event.text,
        "actor": event.actor,
        "fingerprint": event.fingerprint,
    }


def _evidence(record: EvidenceRecord, *, content: bool) -> dict[str, Any]:
    request = record.request
    out = {
        "fingerprint": request.fingerprint,
        "alertname": request.labels.get("alertname"),
        "episode": request.episode.isoformat(),
        "reason": request.reason,
        "status": record.status.value,
        "outcome": record.outcome,
        "summary": record.summary,
        "requestedAt": request.requested_at.isoformat(),
        "capturedAt": _time(record.captured_at),
    }
    return out | {"content": record.content} if content else out


def _detail(incident: Incident, timeline: list[TimelineEvent]) -> dict[str, Any]:
    members = sorted(incident.members.values(), key=lambda m: (m.fired_at, m.fingerprint))
    return {
        **_summary(incident),
        "alerts": [_member(m) for m in members if m.role == "alert"],
        "symptoms": [_member(m) for m in members if m.role == "symptom"],
        "timeline": [_event(e) for e in timeline],
    }
