"""The on-call calendars: a schedule's shifts, or a person's across schedules, as iCalendar for calendar apps.

``GET /api/v1/schedules/{name}.ics`` (``?person=`` keeps one person's shifts) and
``GET /api/v1/people/{name}.ics`` answer ``text/calendar`` rendered by ``receiver.oncall.ical`` over
``?weeks=`` weeks (1 to 52, default 4) from 00:00 UTC today, read from the settings: no store, no engine.
They are reads of the API and are authorised like its other reads (the API token when one is set).
404 names an unknown schedule or person; 400 names a bad parameter. Weeks of hourly shifts take a while
to evaluate (seconds for a year of them): a calendar is computed in a worker thread, one at a time, and
a schedule's events are kept for the window (the day), so fetching again costs nothing.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from datetime import datetime

from aiohttp import web

from receiver.clock import Clock
from receiver.oncall.ical import calendar, events, window
from receiver.oncall.schedules import Schedule
from receiver.web.auth import Credentials, unauthorized
from receiver.web.errors import json_error
from receiver.web.params import int_param

DEFAULT_WEEKS = 4
MAX_WEEKS = 52
CONTENT_TYPE = "text/calendar"
_SHOWN = 100
"""At most this many characters of a name that names nothing are repeated in the error."""
_KEPT = 256
"""Event lists kept (schedule, person, window): every schedule's and person's of a day, several times over."""
_events = functools.lru_cache(maxsize=_KEPT)(events)


class CalendarApi:
    """The handlers of the ``.ics`` routes over the configured schedules and people."""

    def __init__(
        self, schedules: Mapping[str, Schedule], people: frozenset[str], credentials: Credentials, clock: Clock
    ) -> None:
        self._schedules = dict(schedules)
        self._people = people
        self._credentials = credentials
        self._clock = clock
        self._computing = asyncio.Lock()

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
        return await self._answer(f"On call: {name}", [schedule], start, end, person)

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
        return await self._answer(f"On call: {name}", list(self._schedules.values()), start, end, name)

    async def _answer(
        self, title: str, schedules: list[Schedule], start: datetime, end: datetime, person: str | None
    ) -> web.Response:
        """The calendar of ``person``'s shifts (everyone's: None) in ``schedules``, computed off the event loop."""
        stamp = self._clock()
        async with self._computing:
            body = await asyncio.to_thread(_render, title, schedules, start, end, person, stamp)
        return web.Response(text=body, content_type=CONTENT_TYPE, charset="utf-8")


def _render(
    title: str, schedules: list[Schedule], start: datetime, end: datetime, person: str | None, stamp: datetime
) -> str:
    found = [event for schedule in schedules for event in _events(schedule, start, end, person)]
    return calendar(title, found, stamp)


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
