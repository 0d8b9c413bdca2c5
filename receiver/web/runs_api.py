"""The runs API: playbook runs with their steps; approving and rejecting those that wait for a person.

Reads come from the store, as typed records; approving and rejecting go to
the engine (the runner), like every change, and are answered once recorded.
404 for an unknown run (or an id that cannot be one: not 1 to 18 ASCII
digits; a playbook name that is not a DNS label), answered without asking
the store or the engine; 409 for one that does not wait for approval. Fields
are camelCase like the rest of the API (``dryRun``, ``createdAt``); the maps
that carry data rather than structure keep their own keys: an alert's labels
and annotations, a planned step's ``inputs`` (the action's rendered input, as
the playbook format names it) and a step's ``before``/``after`` (the
object's fields, as Kubernetes names them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from receiver.engine.process import EngineUnavailable
from receiver.engine.runner import RunConflict, UnknownRun
from receiver.playbooks.plan import PlannedStep
from receiver.playbooks.records import RunRecord, RunSummary, StepRecord
from receiver.playbooks.runs import RunStatus
from receiver.store import RunStore, StoreError
from receiver.web.auth import Credentials, unauthorized
from receiver.web.errors import json_error, unavailable
from receiver.web.incidents_api import refuse_change
from receiver.web.params import change_body, cursor, int_param, playbook_name, run_id

MAX_LIMIT = 500
UNKNOWN_RUN = "no such run"


class RunCommands(Protocol):
    """Decisions people make about runs, carried out by the runner."""

    async def approve(self, run_id: str, actor: str, reason: str) -> None:
        """Start a run that waits for approval. UnknownRun, RunConflict."""
        ...

    async def reject(self, run_id: str, actor: str, reason: str) -> None:
        """Refuse a run that waits for approval. UnknownRun, RunConflict."""
        ...

    async def reset(self, playbook: str, actor: str, reason: str) -> None:
        """Close a playbook's circuit breaker. UnknownRun (no such playbook)."""
        ...


class RunsApi:
    """The handlers of ``/api/v1/runs``."""

    def __init__(self, store: RunStore, commands: RunCommands, credentials: Credentials) -> None:
        self._store = store
        self._commands = commands
        self._credentials = credentials

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register every route of the runs API."""
        router.add_get("/api/v1/runs", self.list)
        router.add_get("/api/v1/runs/{id}", self.get)
        router.add_post("/api/v1/runs/{id}/approve", self._deciding(self._commands.approve, _run_key))
        router.add_post("/api/v1/runs/{id}/reject", self._deciding(self._commands.reject, _run_key))
        router.add_post(
            "/api/v1/playbooks/{id}/reset", self._deciding(self._commands.reset, playbook_name, "playbook", _closed)
        )

    async def list(self, request: web.Request) -> web.Response:
        """Runs, newest first; ``status``, ``playbook``, ``limit``, ``before`` (the ``next`` of a page)."""
        if not self._credentials.allows(request):
            return unauthorized("receiver-api")
        try:
            status = _status(request.query.get("status"))
            limit = int_param(request, "limit", 50, 1, MAX_LIMIT)
            before = cursor(request)
        except ValueError as err:
            return json_error(400, str(err))
        found = await self._store.runs(
            status=status, playbook=request.query.get("playbook"), before=before, limit=limit
        )
        more = len(found) == limit
        return web.json_response(
            {"runs": [_summary(r) for r in found], "next": str(found[-1].id) if more and found else None}
        )

    async def get(self, request: web.Request) -> web.Response:
        """One run with its alert, plan and every step's result."""
        if not self._credentials.allows(request):
            return unauthorized("receiver-api")
        return await self._detail(_run_key(request))

    async def _detail(self, key: str | None) -> web.Response:
        found = await self._store.run(int(key)) if key is not None else None
        if found is None:
            return json_error(404, f"no run {key}" if key is not None else UNKNOWN_RUN)
        return web.json_response(_record(found))

    def _deciding(
        self,
        command: Callable[[str, str, str], Awaitable[None]],
        parse_key: Callable[[web.Request], str | None],
        what: str = "run",
        answer: Callable[[str], Awaitable[web.Response]] | None = None,
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A handler that carries out ``command`` on the ``{id}`` of the path, then ``answer``-s (default: the run).

        ``parse_key`` reads the ``{id}``: None (an id that cannot name anything) is 404 at once.
        """

        async def handle(request: web.Request) -> web.Response:
            refused = refuse_change(self._credentials, request)
            if refused is not None:
                return refused
            try:
                actor, reason = await change_body(request, "reason", required=False)
            except ValueError as err:
                return json_error(400, str(err))
            key = parse_key(request)
            if key is None:
                return json_error(404, f"no such {what}")
            try:
                await command(key, actor, reason)
            except UnknownRun:
                return json_error(404, f"no {what} {key}")
            except RunConflict as err:
                return json_error(409, str(err))
            except (EngineUnavailable, StoreError) as err:
                return unavailable(err)
            return await (answer or self._detail)(key)

        return handle


def _run_key(request: web.Request) -> str | None:
    found = run_id(request)
    return None if found is None else str(found)


async def _closed(playbook: str) -> web.Response:
    return web.json_response({"playbook": playbook, "breaker": "closed"})


def _status(text: str | None) -> RunStatus | None:
    if text is None:
        return None
    try:
        return RunStatus(text)
    except ValueError:
        raise ValueError(f"status: must be among {', '.join(s.value for s in RunStatus)}") from None


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _summary(run: RunSummary) -> dict[str, Any]:
    return {
        "id": run.id,
        "playbook": run.playbook,
        "fingerprint": run.fingerprint,
        "incident": run.incident,
        "status": run.status.value,
        "reason": run.reason,
        "dryRun": run.dry_run,
        "createdAt": run.created_at.isoformat(),
        "startedAt": _time(run.started_at),
        "finishedAt": _time(run.finished_at),
    }


def _record(run: RunRecord) -> dict[str, Any]:
    return {
        **_summary(run),
        "episode": run.episode.isoformat(),
        "alert": run.alert.values(),
        "plan": [_planned(s) for s in run.plan.steps],
        "steps": [_step(s) for s in run.steps],
    }


def _planned(step: PlannedStep) -> dict[str, Any]:
    return {
        "name": step.name,
        "action": step.action,
        "inputs": dict(step.inputs),
        "when": step.when,
        "refused": step.refused,
        "deferred": step.deferred,
    }


def _step(step: StepRecord) -> dict[str, Any]:
    return {
        "name": step.name,
        "action": step.action,
        "outcome": step.outcome.value,
        "reason": step.reason,
        "seconds": step.seconds,
        "before": None if step.before is None else dict(step.before),
        "after": None if step.after is None else dict(step.after),
        "dryRun": step.dry_run,
        "resolved": list(step.resolved),
    }
