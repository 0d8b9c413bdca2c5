"""``GET /api/v1/alerts``: the alerts the receiver knows, with their state.

Query parameters: ``status`` (repeatable or comma-separated: firing,
resolved, expired), ``filter`` (repeatable label matchers such as
``namespace="prod"``), ``limit`` and ``offset``. The store filters and
pages (``AlertQuery``): a listing never loads every alert.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from receiver.alerts import matchers
from receiver.alerts.dedup import DedupPolicy, Status, is_flapping
from receiver.store import AlertQuery, AlertStore, StoredAlert
from receiver.web.auth import Credentials, unauthorized
from receiver.web.errors import json_error
from receiver.web.params import int_param

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 500
MAX_OFFSET = 1_000_000_000


class AlertsApi:
    """Lists alerts."""

    def __init__(
        self, store: AlertStore, credentials: Credentials, policy: DedupPolicy, clock: Callable[[], datetime]
    ) -> None:
        self._store = store
        self._credentials = credentials
        self._policy = policy
        self._clock = clock

    async def list(self, request: web.Request) -> web.Response:
        """Answer one listing request."""
        if not self._credentials.allows(request):
            return unauthorized("receiver-api")
        try:
            statuses, wanted, limit, offset = _parse_query(request)
        except ValueError as err:
            return json_error(400, str(err))
        now = self._clock()
        page = await self._store.alerts(AlertQuery(statuses, tuple(wanted), limit, offset))
        return web.json_response(
            {"total": page.total, "offset": offset, "alerts": [self._render(a, now) for a in page.alerts]}
        )

    def _render(self, alert: StoredAlert, now: datetime) -> dict[str, Any]:
        state = alert.state
        return {
            "fingerprint": state.fingerprint,
            "status": state.status.value,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "startsAt": state.starts_at.isoformat(),
            "endsAt": state.ends_at.isoformat() if state.ends_at else None,
            "generatorURL": alert.generator_url,
            "firstSeen": state.first_seen.isoformat(),
            "lastSeen": state.last_seen.isoformat(),
            "lastChanged": state.last_changed.isoformat(),
            "flapping": is_flapping(state, now, self._policy),
        }


def _parse_query(request: web.Request) -> tuple[frozenset[Status] | None, list[matchers.Matcher], int, int]:
    raw_statuses = [s for value in request.query.getall("status", []) for s in value.split(",") if s]
    try:
        statuses = frozenset(Status(s) for s in raw_statuses) or None
    except ValueError:
        raise ValueError(f"status: must be among {', '.join(s.value for s in Status)}") from None
    try:
        wanted = [matchers.parse(text) for text in request.query.getall("filter", [])]
    except matchers.InvalidMatcher as err:
        raise ValueError(f"filter: {err}") from None
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, f", 1 to {MAX_LIMIT}")
    offset = int_param(request, "offset", 0, 0, MAX_OFFSET, f", 0 or more (at most {MAX_OFFSET})")
    return statuses, wanted, limit, offset
