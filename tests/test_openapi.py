"""The OpenAPI document describes every route of the app, and only those, and the responses they make.

Real responses of every route (runs of every status, incidents, alerts, every
kind of error) are validated against the document's schemas with a JSON
Schema validator (Draft 2020-12, OpenAPI 3.1's dialect, formats checked), and
the response schemas admit no property they do not name: a field in another
naming convention fails.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from receiver.app import PROCESSOR, RUNNER, create_app
from receiver.config import Settings
from receiver.kube import Kube
from receiver.oncall.links import Action, Claim, Keyring
from receiver.playbooks.runs import RunStatus
from receiver.store.sqlite import SQLiteStore
from receiver.web.auth import Credentials
from receiver.web.runs_api import RunsApi
from tests import corpus
from tests.conftest import Clock
from tests.payloads import alert, body
from tests.store_contract.test_runs import every_status
from tests.test_oncall_calendar_api import ONCALL
from tests.test_runs import APPROVAL, FAST_CRASHLOOP

_METHODS = {"get", "post", "put", "patch", "delete"}


def _spec() -> dict[str, Any]:
    from receiver.web.openapi import DOCUMENT

    spec: dict[str, Any] = yaml.safe_load(DOCUMENT)
    return spec


def _routes(make_settings: Callable[..., Settings]) -> set[tuple[str, str]]:
    app = create_app(make_settings(), registry=CollectorRegistry(), engine="process")
    routes = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue  # aiohttp adds HEAD beside every GET
        info = route.resource.get_info() if route.resource is not None else {}
        routes.add((route.method.lower(), info.get("path") or info.get("formatter", "")))
    return routes


def test_every_route_is_documented_and_every_documented_path_is_routed(make_settings: Callable[..., Settings]) -> None:
    spec = _spec()
    documented = {(method, path) for path, item in spec["paths"].items() for method in item if method in _METHODS}
    assert _routes(make_settings) == documented


def test_the_document_is_openapi_3_1_with_resolvable_references() -> None:
    spec = _spec()
    assert spec["openapi"].startswith("3.1")
    text = yaml.safe_dump(spec)
    for ref in {line.split("$ref: ")[1].strip().strip("'\"") for line in text.splitlines() if "$ref: " in line}:
        node: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # a KeyError here is a dangling reference
        assert node


async def test_the_document_is_served(aiohttp_client: Any, make_settings: Callable[..., Settings]) -> None:
    from receiver.web.openapi import DOCUMENT

    client = await aiohttp_client(create_app(make_settings(), registry=CollectorRegistry(), engine="inline"))
    response = await client.get("/api/v1/openapi.yaml")
    assert response.status == 200
    assert response.content_type == "application/yaml"
    assert await response.read() == DOCUMENT


# Real responses against the document: every route, runs of every status, incidents, alerts, errors.

DOCUMENT_URI = "urn:receiver:openapi"
HOOK = {"Authorization": "Bearer hook-token-0123456789"}
API = {"Authorization": "Bearer api-token-0123456789"}
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Answer:
    """One response the app made, with the route (as the document names it) that made it."""

    method: str
    path: str
    status: int
    content_type: str
    body: bytes


def recording(app: web.Application) -> list[Answer]:
    """Keep every response ``app`` makes from now on."""
    answers: list[Answer] = []

    async def keep(request: web.Request, response: web.StreamResponse) -> None:
        resource = request.match_info.route.resource
        body = response.body if isinstance(response, web.Response) else b""
        path = resource.canonical if resource is not None else ""
        answers.append(Answer(request.method.lower(), path, response.status, response.content_type, bytes(body or b"")))

    app.on_response_prepare.append(keep)
    return answers


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(quote(p.replace("~", "~0").replace("/", "~1"), safe="") for p in parts)


def _schema_ref(spec: dict[str, Any], answer: Answer) -> tuple[str | None, set[str]]:
    """The JSON Schema (a reference into the document) of ``answer``'s body, and the media types documented."""
    responses = spec["paths"][answer.path][answer.method]["responses"]
    assert str(answer.status) in responses, f"{answer.method} {answer.path} answered {answer.status}, not documented"
    response = responses[str(answer.status)]
    where = ("paths", answer.path, answer.method, "responses", str(answer.status))
    if "$ref" in response:
        where = tuple(response["$ref"].removeprefix("#/").split("/"))
        response = spec["components"]["responses"][where[-1]]
    content = response.get("content", {})
    if "application/json" not in content:
        return None, set(content)
    return DOCUMENT_URI + _pointer(*where, "content", "application/json", "schema"), set(content)


def violations(spec: dict[str, Any], answer: Answer) -> list[str]:
    """What is wrong with ``answer`` by the document: undocumented status or media type, body against its schema."""
    ref, media = _schema_ref(spec, answer)
    if answer.content_type not in media:
        return [f"{answer.method} {answer.path} {answer.status}: {answer.content_type} is not among {sorted(media)}"]
    if ref is None or answer.content_type != "application/json":  # another documented type (Slack's empty 200)
        return []
    resource = DRAFT202012.create_resource(spec)
    validator = Draft202012Validator(
        {"$ref": ref},
        registry=Registry().with_resource(DOCUMENT_URI, resource),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    body = json.loads(answer.body)
    return [f"{answer.method} {answer.path} {answer.status}: {e.message}" for e in validator.iter_errors(body)]


def _assert_documented(answers: list[Answer]) -> None:
    spec = _spec()
    found = [problem for answer in answers for problem in violations(spec, answer)]
    assert found == []


def _documented_routes() -> set[tuple[str, str]]:
    return {(m, path) for path, item in _spec()["paths"].items() for m in item if m in _METHODS}


@pytest.fixture
def playbook_dir(tmp_path: Path) -> Path:
    """``crashloop`` runs at once; ``careful`` (same trigger) waits for approval."""
    found = tmp_path / "playbooks"
    found.mkdir()
    (found / "crashloop.yaml").write_text(FAST_CRASHLOOP)
    (found / "careful.yaml").write_text(APPROVAL)
    return found


LINK_SECRET = "link-secret-0123456789-0123456789-abc"
HOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def crash_looping(pod: str) -> bytes:
    """A webhook body with kube-prometheus-stack's KubePodCrashLooping for ``pod`` in shop (tests/corpus)."""
    crashing = corpus.alert("KubePodCrashLooping", namespace="shop", pod=pod)
    return json.dumps(corpus.payload([crashing], starts_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC))).encode()


async def test_every_route_answers_as_the_document_says(
    aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock, playbook_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(
        api={"token": "api-token-0123456789"},
        webhook={"bearer_token": "hook-token-0123456789", "max_body_bytes": 65536},
        remediation={"playbook_dirs": [str(playbook_dir)]},
        oncall={**ONCALL, "links": {"secret": LINK_SECRET}},
        notify={  # a channel nothing listens to: its notifications fail and wait for their retry, documented too
            "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/", "secret": HOOK_SECRET}},
            "routes": [{"channels": ["hook"]}],
        },
    )
    app = create_app(
        settings, registry=CollectorRegistry(), clock=clock, engine="inline", kube=Kube(None, dry_run=True)
    )
    answers = recording(app)
    client = await aiohttp_client(app)

    async def call(method: str, path: str, status: int, **kwargs: Any) -> Any:
        response = await client.request(method, path, **kwargs)
        assert response.status == status, await response.text()
        return await response.json() if response.content_type == "application/json" else await response.text()

    async def settle() -> None:
        await client.server.app[PROCESSOR].drain()
        await client.server.app[RUNNER].drain()

    for labels in ({"pod": "cart-1"}, {"pod": "x;rm -rf /"}, {"pod": "cart-2"}):  # ran, refused, waits
        await call(
            "POST",
            "/api/v1/alerts",
            200,
            data=crash_looping(**labels),
            headers={**HOOK, **JSON},
        )
        await settle()
    await call("POST", "/api/v1/alerts", 400, data=b"{}", headers={**HOOK, **JSON})
    await call("POST", "/api/v1/alerts", 401, data=body(alert("A")), headers=JSON)
    await call("POST", "/api/v1/alerts", 413, data=b"x" * 70_000, headers={**HOOK, **JSON})
    for path in ("/api/v1/alerts", "/api/v1/incidents", "/api/v1/runs"):
        await call("GET", path, 200, headers=API)
        await call("GET", path + "?status=bogus", 400, headers=API)
        await call("GET", path, 401)
    [incident] = (await call("GET", "/api/v1/incidents", 200, headers=API))["incidents"]
    one = f"/api/v1/incidents/{incident['id']}"
    await call("GET", one + "?timelineLimit=5", 200, headers=API)
    await call("GET", one + "?timelineLimit=x", 400, headers=API)
    await call("GET", one, 401)
    await call("GET", "/api/v1/incidents/INC-20200101-0001", 404, headers=API)
    await call("GET", one + "/evidence", 200, headers=API)
    await call("GET", one + "/evidence", 401)
    await call("GET", "/api/v1/incidents/INC-20200101-0001/evidence", 404, headers=API)
    await call("POST", one + "/notes", 201, json={"text": "looking", "actor": "alice"}, headers=API)
    await call("POST", one + "/notes", 400, json={"text": ""}, headers=API)
    await call("POST", one + "/updates", 201, json={"text": "rolled back", "actor": "alice"}, headers=API)
    await call("POST", one + "/updates", 400, json={"text": " "}, headers=API)
    await call("POST", "/api/v1/incidents/INC-20200101-0001/updates", 404, json={"text": "x"}, headers=API)
    await call("POST", one + "/updates", 401, json={"text": "x"})
    listed = await call("GET", "/api/v1/notifications?limit=1", 200, headers=API)
    assert listed["notifications"] and listed["notifications"][0]["channel"] == "hook"
    await call("GET", f"/api/v1/notifications?incident={incident['id']}&state=pending", 200, headers=API)
    await call("GET", "/api/v1/notifications?state=bogus", 400, headers=API)
    await call("GET", "/api/v1/notifications", 401)
    link = "/links/" + Keyring((LINK_SECRET.encode(),)).sign(
        Claim(incident["id"], Action.ACKNOWLEDGE, "alice", clock.now + timedelta(hours=1))
    )
    await call("GET", link, 200)
    await call("POST", link.replace("/links/", "/links/x"), 403)
    await call(
        "GET",
        "/links/"
        + Keyring((LINK_SECRET.encode(),)).sign(
            Claim("INC-20200101-0001", Action.RESOLVE, "alice", clock.now + timedelta(hours=1))
        ),
        404,
    )
    for change in ("ack", "mitigate", "resolve"):
        await call("POST", f"{one}/{change}", 200, json={"actor": "alice"}, headers=API)
        await call("POST", f"{one}/{change}", 409, headers=API)  # resolved: nothing may follow
        await call("POST", f"{one}/{change}", 400, data=b"[1]", headers=API)
        await call("POST", f"/api/v1/incidents/INC-20200101-0001/{change}", 404, headers=API)
        await call("POST", f"{one}/{change}", 401)
    await call("POST", link, 200)  # resolved already: says so
    waiting = (await call("GET", "/api/v1/runs?status=awaiting_approval", 200, headers=API))["runs"]
    for verb, run in zip(("approve", "reject"), waiting, strict=True):
        decided = await call("POST", f"/api/v1/runs/{run['id']}/{verb}", 200, json={"actor": "alice"}, headers=API)
        assert decided["status"] == {"approve": "running", "reject": "rejected"}[verb]
        await call("POST", f"/api/v1/runs/{run['id']}/{verb}", 409, headers=API)
        await call("POST", f"/api/v1/runs/{run['id']}/{verb}", 400, data=b"[1]", headers=API)
        await call("POST", f"/api/v1/runs/999/{verb}", 404, headers=API)
        await call("POST", f"/api/v1/runs/{run['id']}/{verb}", 401)
    await settle()
    await call("POST", "/api/v1/playbooks/crashloop/reset", 200, json={"actor": "alice"}, headers=API)
    await call("POST", "/api/v1/playbooks/nope/reset", 404, headers=API)
    await call("POST", "/api/v1/playbooks/crashloop/reset", 400, data=b"[1]", headers=API)
    await call("POST", "/api/v1/playbooks/crashloop/reset", 401)
    runs = (await call("GET", "/api/v1/runs", 200, headers=API))["runs"]
    for run in runs:
        await call("GET", f"/api/v1/runs/{run['id']}", 200, headers=API)
    await call("GET", "/api/v1/runs/abc", 404, headers=API)
    await call("GET", f"/api/v1/runs/{runs[0]['id']}", 401)
    for path in ("/api/v1/schedules/primary.ics", "/api/v1/people/alice.ics"):
        assert (await call("GET", path + "?weeks=1", 200, headers=API)).startswith("BEGIN:VCALENDAR")
        await call("GET", path + "?weeks=0", 400, headers=API)
        await call("GET", path, 401)
    await call("GET", "/api/v1/schedules/nope.ics", 404, headers=API)
    await call("GET", "/api/v1/people/nope.ics", 404, headers=API)
    for path in ("/api/v1/openapi.yaml", "/healthz", "/readyz", "/metrics"):
        await call("GET", path, 200)
    for path in ("/api/v1/slack/interactions", "/api/v1/pagerduty/webhooks"):  # tests/test_interactions.py: the rest
        await call("POST", path, 403, data=b"payload=%7B%7D")

    unguarded = create_app(
        make_settings(data_dir=str(tmp_path / "other")), registry=CollectorRegistry(), clock=clock, engine="inline"
    )
    answers_without_token = recording(unguarded)
    other = await aiohttp_client(unguarded)
    for path in (f"{one}/ack", "/api/v1/runs/1/approve", "/api/v1/playbooks/crashloop/reset"):
        assert (await other.post(path)).status == 403

    assert {r["status"] for r in runs} == {"succeeded", "blocked", "rejected"}
    _assert_documented(answers + answers_without_token)
    assert {(a.method, a.path) for a in answers} == _documented_routes()


class _NoCommands:
    async def approve(self, run_id: str, actor: str, reason: str) -> None:
        raise AssertionError("only reads here")

    reject = reset = approve


@dataclass(frozen=True)
class Seeded:
    client: Any
    ids: dict[RunStatus, int]
    answers: list[Answer]


@pytest.fixture
async def seeded(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[Seeded]:
    """The runs API over a store holding a run in every status (made by the store's own operations)."""
    store = SQLiteStore(tmp_path / "receiver.db")
    await store.open()
    try:
        ids = await every_status(store)
        app = web.Application()
        RunsApi(store, _NoCommands(), Credentials()).add_routes(app.router)
        answers = recording(app)
        yield Seeded(await aiohttp_client(app), ids, answers)
    finally:
        await store.close()


async def test_runs_of_every_status_answer_as_the_document_says(seeded: Seeded) -> None:
    listed = await (await seeded.client.get("/api/v1/runs")).json()
    details = [await (await seeded.client.get(f"/api/v1/runs/{run_id}")).json() for run_id in seeded.ids.values()]
    assert {r["status"] for r in listed["runs"]} == {s.value for s in RunStatus}
    assert {d["status"] for d in details} == {s.value for s in RunStatus}
    assert [d for d in details if d["steps"]] != []
    _assert_documented(seeded.answers)


async def test_a_snake_case_or_unknown_field_fails_the_document(seeded: Seeded) -> None:
    await seeded.client.get(f"/api/v1/runs/{seeded.ids[RunStatus.SUCCEEDED]}")
    await seeded.client.get("/api/v1/runs/999")
    spec = _spec()
    detail, missing = seeded.answers
    assert violations(spec, detail) == [] and violations(spec, missing) == []
    run = json.loads(detail.body)
    run["dry_run"] = run.pop("dryRun")
    assert any("dry_run" in v for v in violations(spec, replace(detail, body=json.dumps(run).encode())))
    run = json.loads(detail.body)
    run["steps"][0]["finished_at"] = None
    assert any("finished_at" in v for v in violations(spec, replace(detail, body=json.dumps(run).encode())))
    error = {**json.loads(missing.body), "error_code": 404}
    assert any("error_code" in v for v in violations(spec, replace(missing, body=json.dumps(error).encode())))


def test_every_response_object_admits_no_other_properties() -> None:
    """Each object schema with properties that a response uses is closed (or closed by the schema around it)."""
    spec = _spec()
    open_objects: list[str] = []

    def walk(node: Any, where: str, closed_around: bool) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}/{i}", closed_around)
            return
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            target = node["$ref"]
            if target not in seen:
                seen.add(target)
                found: Any = spec
                for part in target.removeprefix("#/").split("/"):
                    found = found[part]
                walk(found, target, closed_around)
            return
        closed = node.get("additionalProperties") is False or node.get("unevaluatedProperties") is False
        if "properties" in node and not (closed or closed_around):
            open_objects.append(where)
        for key, value in node.items():
            walk(value, f"{where}/{key}", key == "allOf" and node.get("unevaluatedProperties") is False)

    seen: set[str] = set()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in _METHODS:
                walk(operation["responses"], f"{method} {path}", False)
    assert open_objects == []
