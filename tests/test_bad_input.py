"""Bad input gets a 4xx naming what is wrong, never a 500 or a hang (issue #12).

Each case here answered 500 (or hung 10 s, then 503) before: deep nesting,
duplicate keys with a bad label, times an offset pushes out of years 1–9999,
ids and cursors that are not small ASCII numbers (``²`` passes ``isdigit``),
non-UTF-8 bytes in ``Authorization``; 405 without ``Allow``; internal error
text in 503s and database paths in ``/readyz``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from receiver.alerts import wire
from receiver.app import PROCESSOR, create_app
from receiver.config import Settings
from receiver.store.sqlite import inbox_path
from receiver.web import params
from receiver.web.auth import Credentials
from receiver.web.errors import GENERIC, public_reason, unavailable
from receiver.web.incidents_api import IncidentsApi
from receiver.web.runs_api import RunsApi
from tests.conftest import Clock
from tests.payloads import alert, body, notification

Client = TestClient[Any, Any]
API_TOKEN = "api-token-0123456789"
HOOK_TOKEN = "hook-token-0123456789"
API = {"Authorization": f"Bearer {API_TOKEN}"}
HOOK = {"Authorization": f"Bearer {HOOK_TOKEN}"}
DEEP = 100_000


@pytest.fixture
async def client(aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock) -> Client:
    settings = make_settings(
        api={"token": API_TOKEN}, webhook={"bearer_token": HOOK_TOKEN}, store={"busy_timeout": "100ms"}
    )
    app = create_app(settings, registry=CollectorRegistry(), clock=clock, engine="inline")
    made: Client = await aiohttp_client(app)
    return made


async def _problems(client: Client, data: bytes) -> list[dict[str, str]]:
    response = await client.post("/api/v1/alerts", data=data, headers=HOOK)
    assert response.status == 400, await response.text()
    answer = await response.json()
    assert answer["error"] == "invalid notification"
    problems: list[dict[str, str]] = answer["problems"]
    return problems


def _raw(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


# The webhook.


@pytest.mark.parametrize(
    "data",
    [
        b'{"version": "4", "alerts": [], "extra": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"version": "4", "alerts": [], "extra": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
    ],
    ids=["arrays", "objects"],
)
async def test_a_body_nested_too_deep_gets_400(client: Client, data: bytes) -> None:
    assert await _problems(client, data) == [{"field": "body", "message": wire.TOO_DEEP}]


async def test_a_label_nested_too_deep_gets_400_naming_the_label_set(client: Client) -> None:
    labels = b'{"a": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    data = _raw(notification(alert("A"))).replace(b'{"alertname": "A"}', labels)
    [problem] = await _problems(client, data)
    assert problem["field"] == "alerts[0].labels"


BAD_LABEL = b'"labels": {"alertname": 1}'
DUPLICATES = {
    "alerts then empty alerts": b'{"version": "4", "alerts": [{"status": "firing", "startsAt": "2026-11-22T09:00:00Z", '
    + BAD_LABEL
    + b'}], "alerts": []}',
    "alerts then a number": b'{"version": "4", "alerts": [{"status": "firing", "startsAt": "2026-11-22T09:00:00Z", '
    + BAD_LABEL
    + b'}], "alerts": 5}',
    "labels then a string": b'{"version": "4", "alerts": [{"status": "firing", "startsAt": "2026-11-22T09:00:00Z", '
    + BAD_LABEL
    + b', "labels": "x"}]}',
    "labels then good labels": b'{"version": "4", "alerts": [{"status": "firing", '
    + b'"startsAt": "2026-11-22T09:00:00Z", '
    + BAD_LABEL
    + b', "labels": {"alertname": "A"}}]}',
}


@pytest.mark.parametrize("data", DUPLICATES.values(), ids=DUPLICATES.keys())
async def test_duplicate_keys_with_a_bad_label_get_400_naming_the_label_set(client: Client, data: bytes) -> None:
    [problem] = await _problems(client, data)
    assert problem["field"].startswith("alerts[0].labels")
    assert problem["message"] == "Expected `str`, got `int`"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("startsAt", "0001-01-01T00:00:00+01:00"),
        ("startsAt", "0001-01-01T00:30:00+23:59"),
        ("startsAt", "9999-12-31T23:59:59-01:00"),
        ("endsAt", "9999-12-31T23:00:00-23:59"),
    ],
)
async def test_a_time_an_offset_moves_out_of_years_1_to_9999_gets_400(client: Client, field: str, value: str) -> None:
    problems = await _problems(client, body({**alert("A"), field: value}))
    assert problems == [{"field": f"alerts[0].{field}", "message": f"{value!r} is outside years 1 to 9999 in UTC"}]


# Ids and cursors: ASCII digits, bounded; ids of the wrong form are unknown without asking anyone.

NOT_NUMBERS = ["²", "1²", "٣", "1" * 25, "-1", "+1", " 1", "1e3", "0x10"]


@pytest.mark.parametrize("value", NOT_NUMBERS)
@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/incidents"])
async def test_a_cursor_that_is_not_a_small_ascii_number_gets_400(client: Client, path: str, value: str) -> None:
    response = await client.get(path, params={"before": value}, headers=API)
    assert response.status == 400
    assert (await response.json())["error"].startswith("before:")


@pytest.mark.parametrize("value", ["²", "٣", "1" * 25, "99999999999999999999"])
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/runs", "limit"),
        ("/api/v1/incidents", "limit"),
        ("/api/v1/alerts", "limit"),
        ("/api/v1/alerts", "offset"),
        ("/api/v1/incidents/INC-20261122-0001", "timelineLimit"),
    ],
)
async def test_a_number_that_is_not_a_small_ascii_number_gets_400(
    client: Client, path: str, name: str, value: str
) -> None:
    response = await client.get(path, params={name: value}, headers=API)
    assert response.status == 400
    assert (await response.json())["error"].startswith(f"{name}: must be a whole number")


@pytest.mark.parametrize("id", ["²", "1²", "1" * 25, "-1", "9" * 19, "1%0A"])
@pytest.mark.parametrize(
    "method_path", ["GET /api/v1/runs/{}", "POST /api/v1/runs/{}/approve", "POST /api/v1/runs/{}/reject"]
)
async def test_a_run_id_that_is_not_a_run_id_gets_404_at_once(client: Client, method_path: str, id: str) -> None:
    method, path = method_path.split()
    response = await asyncio.wait_for(client.request(method, path.format(id), headers=API), 2)
    assert response.status == 404
    assert (await response.json()) == {"error": "no such run"}


@pytest.mark.parametrize(
    "id", ["INC-²0261122-0001", "INC-20261122-1" + "0" * 1500, "inc-20261122-0001", "INC-20261122-0001%0A", "x"]
)
@pytest.mark.parametrize("action", ["", "/ack", "/mitigate", "/resolve", "/notes"])
async def test_an_incident_id_that_is_not_an_incident_id_gets_404(client: Client, action: str, id: str) -> None:
    path = f"/api/v1/incidents/{id}{action}"
    if action:
        response = await client.post(path, json={"text": "x"}, headers=API)
    else:
        response = await client.get(path, headers=API)
    assert response.status == 404
    assert (await response.json()) == {"error": "no such incident"}


class _Refusing:
    """Commands that must never be reached."""

    def __getattr__(self, name: str) -> Callable[..., Awaitable[None]]:
        async def call(*args: Any) -> None:
            raise AssertionError(f"{name}{args} reached the engine")

        return call


@pytest.fixture
async def refusing_client(aiohttp_client: Any) -> Client:
    """The incident and runs APIs over commands that fail the test when reached (and no store)."""
    app = web.Application()
    credentials = Credentials(bearer_token=API_TOKEN.encode())
    IncidentsApi(None, _Refusing(), credentials).add_routes(app.router)  # type: ignore[arg-type]
    RunsApi(None, _Refusing(), credentials).add_routes(app.router)  # type: ignore[arg-type]
    made: Client = await aiohttp_client(app)
    return made


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/runs/²/approve",
        "/api/v1/runs/" + "1" * 25 + "/reject",
        "/api/v1/incidents/INC-²0261122-0001/ack",
        "/api/v1/incidents/" + "I" * 1500 + "/notes",
        "/api/v1/playbooks/Not_A_Name/reset",
        "/api/v1/playbooks/" + "a" * 64 + "/reset",
    ],
)
async def test_ids_of_the_wrong_form_never_reach_the_engine(refusing_client: Client, path: str) -> None:
    response = await refusing_client.post(path, json={"text": "x"}, headers=API)
    assert response.status == 404


CONTROL = ["\x00", "\x1b[31m", "\r", "\x7f", "\x85"]


@pytest.mark.parametrize("char", CONTROL)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/incidents/INC-20261122-0001/notes", "text"),
        ("/api/v1/incidents/INC-20261122-0001/ack", "reason"),
        ("/api/v1/runs/1/approve", "reason"),
        ("/api/v1/playbooks/crashloop/reset", "reason"),
        ("/api/v1/runs/1/reject", "actor"),
    ],
)
async def test_control_characters_in_texts_get_400_naming_the_field(
    refusing_client: Client, path: str, field: str, char: str
) -> None:
    payload = {"text": "fine", field: f"a{char}b"}
    response = await refusing_client.post(path, json=payload, headers=API)
    assert response.status == 400
    assert (await response.json())["error"].startswith(f"{field}: must not contain control characters")


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"text": "x" * (params.MAX_TEXT + 1)}, "text"), ({"text": "x", "actor": "a" * (params.MAX_ACTOR + 1)}, "actor")],
)
async def test_texts_over_their_limits_get_400(refusing_client: Client, payload: dict[str, str], field: str) -> None:
    response = await refusing_client.post("/api/v1/incidents/INC-20261122-0001/notes", json=payload, headers=API)
    assert response.status == 400
    assert (await response.json())["error"].startswith(f"{field}: must be")


async def test_newlines_and_tabs_are_kept_and_a_deep_change_body_gets_400(refusing_client: Client) -> None:
    deep = b"[" * DEEP + b"]" * DEEP
    response = await refusing_client.post("/api/v1/runs/1/approve", data=deep, headers=API)
    assert response.status == 400
    assert (await response.json()) == {"error": "the body must be a JSON object"}


async def test_a_note_with_newlines_and_tabs_is_taken(client: Client) -> None:
    response = await client.post("/api/v1/alerts", data=body(alert("A", namespace="shop")), headers=HOOK)
    assert response.status == 200
    await client.server.app[PROCESSOR].drain()
    listed = await (await client.get("/api/v1/incidents", headers=API)).json()
    [incident] = listed["incidents"]
    response = await client.post(
        f"/api/v1/incidents/{incident['id']}/notes", json={"text": "line one\n\tline two"}, headers=API
    )
    assert response.status == 201
    assert (await response.json())["timeline"][-1]["text"] == "line one\n\tline two"


# Credentials, 405, error texts.


async def _raw_request(client: Client, head: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line = answer.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), answer


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/alerts"),
        ("GET", "/api/v1/alerts"),
        ("GET", "/api/v1/incidents"),
        ("GET", "/api/v1/runs"),
        ("POST", "/api/v1/incidents/INC-20261122-0001/ack"),
        ("GET", "/api/v1/runs/1"),
    ],
)
@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"\xc3\x28 x", b"Basic \x80"])
async def test_authorization_that_is_not_utf8_gets_401(client: Client, method: str, path: str, value: bytes) -> None:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n".encode()
        + b"Authorization: "
        + value
        + b"\r\n\r\n"
    )
    status, answer = await _raw_request(client, head)
    assert status == 401, answer
    assert b"WWW-Authenticate" in answer


async def test_405_says_which_methods_are_allowed(client: Client) -> None:
    response = await client.delete("/api/v1/alerts", headers=API)
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) >= {"GET", "POST"}
    assert "error" in await response.json()
    put = await client.put("/api/v1/runs/1/approve", headers=API)
    assert put.status == 405 and put.headers["Allow"] == "POST"


def test_a_503_tells_a_generic_reason_and_logs_the_error(caplog: pytest.LogCaptureFixture) -> None:
    err = RuntimeError("/srv/secret/receiver.db: disk I/O error at page 17")
    response = unavailable(err)
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    assert response.text is not None and "/srv/secret" not in response.text and GENERIC in response.text
    assert any(getattr(r, "error", None) == str(err) for r in caplog.records)
    assert public_reason(RuntimeError("/x/r.db: database is locked")) == "the database is locked"


async def test_readyz_tells_no_database_path(client: Client, make_settings: Callable[..., Settings]) -> None:
    path = inbox_path(make_settings().database_path)
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        response = await client.get("/readyz")
        assert response.status == 503
        answer = await response.json()
        assert answer["store"] == "the database is locked"
        assert str(Path(path).parent) not in json.dumps(answer)
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()


@pytest.mark.parametrize("count", [b"9223372036854775808", b"18446744073709551616", b"1e300", b"2.5", b"-1"])
async def test_a_count_the_store_cannot_hold_gets_400(client: Client, count: bytes) -> None:
    data = b'{"version": "4", "alerts": [], "truncatedAlerts": ' + count + b"}"
    [problem] = await _problems(client, data)
    assert problem["field"] == "truncatedAlerts"


async def test_a_whole_float_count_is_a_count(client: Client) -> None:
    data = b'{"version": "4", "alerts": [], "truncatedAlerts": 3.0}'
    response = await client.post("/api/v1/alerts", data=data, headers=HOOK)
    assert response.status == 200
    await client.server.app[PROCESSOR].drain()


async def test_a_fingerprint_with_a_trailing_newline_gets_400(client: Client) -> None:
    problems = await _problems(client, body({**alert("A"), "fingerprint": "0123456789abcdef\n"}))
    assert [p["field"] for p in problems] == ["alerts[0].fingerprint"]


@pytest.mark.parametrize(
    ("path", "headers", "encoding"),
    [
        ("/api/v1/alerts", HOOK, "gzip"),
        ("/api/v1/alerts", HOOK, "deflate"),
        ("/api/v1/incidents/INC-20261122-0001/ack", API, "deflate"),
    ],
)
async def test_a_body_that_is_not_in_its_content_encoding_gets_400(
    client: Client, path: str, headers: dict[str, str], encoding: str
) -> None:
    response = await client.post(path, data=b"0123456789", headers={**headers, "Content-Encoding": encoding})
    assert response.status == 400  # aiohttp's decompression error escaped request.read() as a 500
    assert "Content-Encoding" in (await response.json())["error"]
