"""A fake Atlassian Statuspage REST API v1, as a page's API key uses it: incidents and components.

It follows Statuspage's public API reference, https://developer.statuspage.io/ (its OpenAPI description, as
generated clients carry it: https://github.com/alissonlinneker/statuspage-php-sdk, docs/Api/IncidentsApi.md,
docs/Model/PostPagesPageIdIncidentsIncident.md, docs/Model/Incident.md, docs/Model/Component.md,
docs/Model/ErrorEntity.md):

- Authentication: ``Authorization: OAuth <api key>`` (or the ``api_key`` query parameter); a missing or
  unknown key is answered 401.
- "Each API token is limited to 1 request / second as measured on a 60 second rolling window ... Error codes
  420 or 429 indicate that you have exceeded the rate limit and the request has been rejected": here 60
  requests a rolling 60 seconds per key on the fake's clock, answered 420 (``rate_status=429`` for the other).
- ``POST /v1/pages/{page_id}/incidents`` with ``{"incident": {...}}``: ``name`` (required, at most 255
  characters), ``status`` (investigating, identified, monitoring, resolved for a realtime incident),
  ``impact_override`` (none, minor, major, critical), ``body`` (the first incident update, at most 25000
  characters), ``component_ids``, ``components`` (``{component id: component status}``),
  ``deliver_notifications``, ``metadata`` (top-level values must be objects). 201 with the incident.
- ``PATCH``/``PUT /v1/pages/{page_id}/incidents/{incident_id}``: the same fields; a status or body adds an
  incident update. ``GET /v1/pages/{page_id}/incidents`` (``q``, ``limit`` at most 100, ``page``),
  ``GET .../incidents/unresolved``, ``GET .../incidents/{incident_id}``.
- ``GET /v1/pages/{page_id}``: the page (docs/Api/PagesApi.md "Get a page", docs/Model/Page.md: ``id``,
  ``name``, ``subdomain``, ``url``, ``time_zone``, ...; here the few fields a client reads).
- ``GET /v1/pages/{page_id}/components``, ``GET``/``PATCH``/``PUT .../components/{component_id}`` with
  ``{"component": {"status": ...}}``; statuses operational, degraded_performance, partial_outage,
  major_outage, under_maintenance.
- Errors carry the documented ErrorEntity, ``{"message": ...}``: 400 a body without its ``incident`` or
  ``component`` object, 401, 404 an unknown page, incident or component, 420 rate limited, 422 a field
  that fails validation.

Where the reference is silent, the fake chooses, and says so here: ids are 12 characters, deterministic
(``i00000000001``); only requests answered (not refused 401/420) count toward the rate limit and no
``Retry-After`` is sent (none is documented); an unknown component id is a 422; the incident's ``impact``
is ``impact_override`` when set, else the worst of its components' statuses (major_outage → critical,
partial_outage → major, degraded_performance → minor); scheduled maintenances, subscribers, postmortems,
templates and form-encoded bodies are not implemented.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from receiver.clock import Clock, utc_now
from tests.fakes.server import PARSED, FakeServer, Handler, SlidingWindow

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
COMPONENT_STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance")
IMPACTS = ("none", "minor", "major", "critical")
IMPACT_OF = {"major_outage": "critical", "partial_outage": "major", "degraded_performance": "minor"}
MAX_NAME = 255
MAX_BODY = 25000
MAX_LIMIT = 100
RATE_LIMIT = 60
RATE_WINDOW = timedelta(seconds=60)
PAGE_PATH = re.compile(r"^/v1/pages/(?P<page_id>[^/]+)(/|$)")


def error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


class Refused(Exception):
    """A request the API refuses: its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _stamp(at: datetime) -> str:
    return at.isoformat()


def _field_problems(fields: Mapping[str, Any], creating: bool) -> list[str]:
    problems: list[str] = []
    name = fields.get("name")
    if (creating or "name" in fields) and (not isinstance(name, str) or not name.strip()):
        problems.append("name can't be blank")
    elif isinstance(name, str) and len(name) > MAX_NAME:
        problems.append(f"name is too long (maximum is {MAX_NAME} characters)")
    if "status" in fields and fields["status"] not in INCIDENT_STATUSES:
        problems.append(f"status must be one of {', '.join(INCIDENT_STATUSES)}")
    if "impact_override" in fields and fields["impact_override"] not in IMPACTS:
        problems.append(f"impact_override must be one of {', '.join(IMPACTS)}")
    body = fields.get("body")
    if body is not None and (not isinstance(body, str) or len(body) > MAX_BODY):
        problems.append(f"body must be text of at most {MAX_BODY} characters")
    if "deliver_notifications" in fields and not isinstance(fields["deliver_notifications"], bool):
        problems.append("deliver_notifications must be true or false")
    metadata = fields.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, dict) for v in metadata.values()):
        problems.append("metadata must be an object whose top-level values are objects")
    return problems


def _component_problems(fields: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    known = set(known)
    ids = fields.get("component_ids", [])
    statuses = fields.get("components", {})
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return ["component_ids must be a list of component ids"]
    if not isinstance(statuses, dict):
        return ["components must map component ids to statuses"]
    problems = [f"component {i} does not exist on this page" for i in [*ids, *statuses] if i not in known]
    problems += [
        f"component {i} status must be one of {', '.join(COMPONENT_STATUSES)}"
        for i, s in statuses.items()
        if s not in COMPONENT_STATUSES
    ]
    return problems


def incident_problems(fields: Mapping[str, Any], components: Iterable[str], creating: bool) -> list[str]:
    """Why Statuspage would refuse these incident fields (empty when they are valid). Pure."""
    return _field_problems(fields, creating) + _component_problems(fields, components)


def wrapped(body: Any, name: str) -> dict[str, Any]:
    """The object under ``name`` in a request body; Refused 400 when there is none."""
    if not isinstance(body, dict) or not isinstance(body.get(name), dict):
        raise Refused(400, f"the request body must be a JSON object with an '{name}' object")
    inner: dict[str, Any] = body[name]
    return inner


class StatuspageFake(FakeServer):
    """One Statuspage page on 127.0.0.1: ``url + "/v1"`` stands for https://api.statuspage.io/v1."""

    def __init__(
        self,
        clock: Clock = utc_now,
        api_keys: Iterable[str] = ("statuspage-test-key",),
        page_id: str = "pg0000000001",
        components: Mapping[str, str] | None = None,
        rate_limit: int | None = RATE_LIMIT,
        rate_window: timedelta = RATE_WINDOW,
        rate_status: int = 420,
    ) -> None:
        super().__init__(clock=clock)
        self.api_keys = frozenset(api_keys)
        self.page_id = page_id
        self.rate_limit, self.rate_window, self.rate_status = rate_limit, rate_window, rate_status
        self.incidents: dict[str, dict[str, Any]] = {}
        self.components: dict[str, dict[str, Any]] = {}
        self._windows: dict[str, SlidingWindow] = {}
        self._ids = 0
        for component_id, name in (components or {"cmp000000001": "API"}).items():
            self.components[component_id] = self._component(component_id, name, len(self.components) + 1)

    @property
    def api_url(self) -> str:
        return self.url + "/v1"

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._guard)
        page = "/v1/pages/{page_id}"
        add = app.router.add_route
        add("GET", page, self._get_page)
        add("GET", page + "/incidents", self._list_incidents)
        add("GET", page + "/incidents/unresolved", self._unresolved_incidents)
        add("POST", page + "/incidents", self._create_incident)
        add("GET", page + "/incidents/{incident_id}", self._get_incident)
        add("PATCH", page + "/incidents/{incident_id}", self._update_incident)
        add("PUT", page + "/incidents/{incident_id}", self._update_incident)
        add("GET", page + "/components", self._list_components)
        add("GET", page + "/components/{component_id}", self._get_component)
        add("PATCH", page + "/components/{component_id}", self._update_component)
        add("PUT", page + "/components/{component_id}", self._update_component)

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:011d}"

    def _component(self, component_id: str, name: str, position: int) -> dict[str, Any]:
        now = _stamp(self.clock())
        return {
            "id": component_id,
            "page_id": self.page_id,
            "group_id": None,
            "created_at": now,
            "updated_at": now,
            "group": False,
            "name": name,
            "description": None,
            "position": position,
            "status": "operational",
            "showcase": True,
            "only_show_if_degraded": False,
            "automation_email": f"component+{component_id}@notifications.statuspage.io",
            "start_date": None,
        }

    # -- the guard: authentication, the rate limit, the page, refusals -------------------------------------

    def _key(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() == "oauth" and key.strip():
            return key.strip()
        return request.query.get("api_key")

    def _throttled(self, key: str, now: datetime) -> bool:
        """Whether the key has had its requests this window; when not, this one is counted."""
        if self.rate_limit is None:
            return False
        window = self._windows.setdefault(key, SlidingWindow(self.rate_limit, self.rate_window))
        return window.take(now) is not None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        key = self._key(request)
        if key is None or key not in self.api_keys:
            return error(401, "Could not authenticate")
        if self._throttled(key, self.clock()):
            return error(self.rate_status, "Rate limit exceeded: 1 request / second per API token")
        page = PAGE_PATH.match(request.path)
        if page is None or page["page_id"] != self.page_id:
            return error(404, "The requested resource could not be found.")
        try:
            return await handler(request)
        except Refused as refused:
            return error(refused.status, refused.message)
        except web.HTTPNotFound:
            return error(404, "The requested resource could not be found.")

    async def _fields(self, request: web.Request, name: str) -> dict[str, Any]:
        return wrapped(request.get(PARSED), name)

    async def _get_page(self, request: web.Request) -> web.Response:
        now = _stamp(self.clock())
        return web.json_response(
            {
                "id": self.page_id,
                "created_at": now,
                "updated_at": now,
                "name": "Fake status",
                "subdomain": "fake",
                "url": "https://status.fake.test",
                "time_zone": "UTC",
            }
        )

    # -- incidents -----------------------------------------------------------------------------------------

    def _incident(self, request: web.Request) -> dict[str, Any]:
        incident = self.incidents.get(request.match_info["incident_id"])
        if incident is None:
            raise Refused(404, "The requested resource could not be found.")
        return incident

    def incident_named(self, name: str) -> dict[str, Any] | None:
        """The latest incident called ``name``."""
        found = [i for i in self.incidents.values() if i["name"] == name]
        return found[-1] if found else None

    async def _create_incident(self, request: web.Request) -> web.Response:
        fields = await self._fields(request, "incident")
        problems = incident_problems(fields, self.components, creating=True)
        if problems:
            raise Refused(422, "; ".join(problems))
        now = self.clock()
        incident_id = self._new_id("i")
        incident: dict[str, Any] = {
            "id": incident_id,
            "page_id": self.page_id,
            "name": fields["name"],
            "status": fields.get("status", "investigating"),
            "impact_override": fields.get("impact_override"),
            "created_at": _stamp(now),
            "updated_at": _stamp(now),
            "monitoring_at": None,
            "resolved_at": None,
            "shortlink": f"https://stspg.io/{incident_id}",
            "metadata": fields.get("metadata", {}),
            "component_ids": [],
            "incident_updates": [],
        }
        self.incidents[incident_id] = incident
        self._apply(incident, fields, now)
        return web.json_response(self._view(incident), status=201)

    async def _update_incident(self, request: web.Request) -> web.Response:
        incident = self._incident(request)
        fields = await self._fields(request, "incident")
        problems = incident_problems(fields, self.components, creating=False)
        if problems:
            raise Refused(422, "; ".join(problems))
        for name in ("name", "impact_override", "metadata"):
            if name in fields:
                incident[name] = fields[name]
        self._apply(incident, fields, self.clock())
        return web.json_response(self._view(incident))

    def _apply(self, incident: dict[str, Any], fields: Mapping[str, Any], now: datetime) -> None:
        """Set the status, the components and their statuses, and add an incident update when there is news."""
        statuses: Mapping[str, str] = fields.get("components", {})
        changes = self._set_statuses(statuses, now)
        for component_id in [*fields.get("component_ids", []), *statuses]:
            if component_id not in incident["component_ids"]:
                incident["component_ids"].append(component_id)
        status = fields.get("status", incident["status"])
        incident["status"] = status
        if status == "monitoring" and incident["monitoring_at"] is None:
            incident["monitoring_at"] = _stamp(now)
        incident["resolved_at"] = _stamp(now) if status == "resolved" else None
        incident["updated_at"] = _stamp(now)
        if "status" in fields or "body" in fields or changes or not incident["incident_updates"]:
            incident["incident_updates"].insert(0, self._update(incident, fields, changes, now))

    def _set_statuses(self, statuses: Mapping[str, str], now: datetime) -> list[dict[str, str]]:
        """Set the page's components' statuses; the changes, as an incident update's affected_components."""
        changes = []
        for component_id, status in statuses.items():
            component = self.components[component_id]
            changes.append(
                {
                    "code": component_id,
                    "name": component["name"],
                    "old_status": component["status"],
                    "new_status": status,
                }
            )
            component["status"], component["updated_at"] = status, _stamp(now)
        return changes

    def _update(
        self, incident: Mapping[str, Any], fields: Mapping[str, Any], changes: list[dict[str, str]], now: datetime
    ) -> dict[str, Any]:
        return {
            "id": self._new_id("u"),
            "incident_id": incident["id"],
            "status": incident["status"],
            "body": fields.get("body", ""),
            "created_at": _stamp(now),
            "updated_at": _stamp(now),
            "display_at": _stamp(now),
            "deliver_notifications": fields.get("deliver_notifications", True),
            "affected_components": changes,
        }

    def _impact(self, incident: Mapping[str, Any]) -> str:
        if incident["impact_override"] is not None:
            return str(incident["impact_override"])
        ranks = [IMPACTS.index(IMPACT_OF.get(self.components[c]["status"], "none")) for c in incident["component_ids"]]
        return IMPACTS[max(ranks, default=0)]

    def _view(self, incident: Mapping[str, Any]) -> dict[str, Any]:
        """The incident as the API answers it."""
        shown = {k: v for k, v in incident.items() if k != "component_ids"}
        shown["impact"] = self._impact(incident)
        shown["components"] = [dict(self.components[c]) for c in incident["component_ids"]]
        shown["incident_updates"] = [dict(u) for u in incident["incident_updates"]]
        return shown

    async def _get_incident(self, request: web.Request) -> web.Response:
        return web.json_response(self._view(self._incident(request)))

    def _listed(self, request: web.Request, incidents: list[Mapping[str, Any]]) -> web.Response:
        try:
            limit = min(int(request.query.get("limit", MAX_LIMIT)), MAX_LIMIT)
            page = int(request.query.get("page", 1))
        except ValueError as bad:
            raise Refused(400, "limit and page must be integers") from bad
        if limit < 1 or page < 1:
            raise Refused(400, "limit and page must be positive")
        query = request.query.get("q", "").lower()
        if query:
            incidents = [i for i in incidents if query in _searchable(i)]
        newest_first = list(reversed(incidents))
        return web.json_response([self._view(i) for i in newest_first[(page - 1) * limit : page * limit]])

    async def _list_incidents(self, request: web.Request) -> web.Response:
        return self._listed(request, list(self.incidents.values()))

    async def _unresolved_incidents(self, request: web.Request) -> web.Response:
        return self._listed(request, [i for i in self.incidents.values() if i["status"] != "resolved"])

    # -- components ----------------------------------------------------------------------------------------

    def _found_component(self, request: web.Request) -> dict[str, Any]:
        component = self.components.get(request.match_info["component_id"])
        if component is None:
            raise Refused(404, "The requested resource could not be found.")
        return component

    async def _list_components(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.components.values()))

    async def _get_component(self, request: web.Request) -> web.Response:
        return web.json_response(self._found_component(request))

    async def _update_component(self, request: web.Request) -> web.Response:
        component = self._found_component(request)
        fields = await self._fields(request, "component")
        problems = component_problems(fields)
        if problems:
            raise Refused(422, "; ".join(problems))
        for name in ("name", "description", "status"):
            if name in fields:
                component[name] = fields[name]
        component["updated_at"] = _stamp(self.clock())
        return web.json_response(component)


def component_problems(fields: Mapping[str, Any]) -> list[str]:
    """Why Statuspage would refuse these component fields (empty when they are valid). Pure."""
    problems = []
    if "status" in fields and fields["status"] not in COMPONENT_STATUSES:
        problems.append(f"status must be one of {', '.join(COMPONENT_STATUSES)}")
    if "name" in fields and (not isinstance(fields["name"], str) or not fields["name"].strip()):
        problems.append("name can't be blank")
    if "description" in fields and not isinstance(fields["description"], str | None):
        problems.append("description must be text")
    return problems


def _searchable(incident: Mapping[str, Any]) -> str:
    bodies = " ".join(str(u["body"]) for u in incident["incident_updates"])
    return f"{incident['name']} {incident['status']} {bodies}".lower()
