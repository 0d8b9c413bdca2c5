"""The on-call calendars: a schedule's shifts, or a person's across schedules, as iCalendar for calendar apps.

``GET /api/v1/schedules/{name}.ics`` (``?person=`` keeps one person's shifts) and
``GET /api/v1/people/{name}.ics`` answer ``text/calendar`` rendered by ``receiver.oncall.ical`` over
``?weeks=`` weeks (1 to 52, default 4) from 00:00 UTC today, read from the settings: no store, no engine.
They are reads of the API and are authorised like its other reads (the API token when one is set).
404 names an unknown schedule or person; 400 names a bad parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from receiver.clock import Clock
from receiver.oncall.ical import Event, calendar, events, window
from receiver.oncall.schedules import Schedule
from receiver.web.auth import Credentials, unauthorized
from receiver.web.errors import json_error
from receiver.web.params import int_param

DEFAULT_WEEKS = 4
MAX_WEEKS = 52
CONTENT_TYPE = "text/calendar"
_SHOWN = 100
"""At most this many characters of a name that names nothing are repeated in the error."""


class CalendarApi:
    """The handlers of the ``.ics`` routes over the configured schedules and people."""

    def __init__(
        self, schedules: Mapping[str, Schedule], people: frozenset[str], credentials: Credentials, clock: Clock
    ) -> None:
        self._schedules = dict(schedules)
        self._people = people
        self._credentials = credentials
        self._clock = clock

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register both calendar routes."""
        router.add_get("/api/v1/schedules/{name}.ics", self.schedule)
        router.add_get("/api/v1/people/{name}.ics", self.person)

    async def schedule(self, request: web.Request) -> web.Response:
        """One schedule's shifts; ``person`` keeps only theirs."""
        if not self._credentials.allows(request):
            return unauthorized("receiver-api")
        name = request.match_info["name"]
        schedule = self._schedules.get(name)
        if schedule is None:
            return json_error(404, f"no schedule {_shown(name)} in oncall.schedules")
        try:
            weeks = _weeks(request)
            person = _person(request, self._people)
        except ValueError as err:
            return json_error(400, str(err))
        start, end = window(self._clock(), weeks)
        return self._answer(f"On call: {name}", events(schedule, start, end, person))

    async def person(self, request: web.Request) -> web.Response:
        """One person's shifts in every schedule."""
        if not self._credentials.allows(request):
            return unauthorized("receiver-api")
        name = request.match_info["name"]
        if name not in self._people:
            return json_error(404, f"no person {_shown(name)} in oncall.people")
        try:
            weeks = _weeks(request)
        except ValueError as err:
            return json_error(400, str(err))
        start, end = window(self._clock(), weeks)
        found = [e for s in self._schedules.values() for e in events(s, start, end, name)]
        return self._answer(f"On call: {name}", found)

    def _answer(self, title: str, found: list[Event]) -> web.Response:
        body = calendar(title, found, self._clock())
        return web.Response(text=body, content_type=CONTENT_TYPE, charset="utf-8")


def _weeks(request: web.Request) -> int:
    return int_param(request, "weeks", DEFAULT_WEEKS, 1, MAX_WEEKS)


def _person(request: web.Request, people: frozenset[str]) -> str | None:
    """The ``person`` query parameter: absent, or a name from ``oncall.people`` (ValueError naming it)."""
    name = request.query.get("person")
    if name is not None and name not in people:
        raise ValueError(f"person: {_shown(name)} is not in oncall.people")
    return name


def _shown(name: str) -> str:
    """``name`` quoted for an error message, cut to a bounded length (the JSON answer escapes the rest)."""
    return repr(name if len(name) <= _SHOWN else name[:_SHOWN] + "...")
