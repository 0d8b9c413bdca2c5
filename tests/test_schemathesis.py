"""Schemathesis against the served OpenAPI document: every operation, with the API token and with the webhook token.

The daemon (inline engine, a playbook that waits for approval, an incident
and runs in the store) is served on 127.0.0.1 from a thread; its document is
loaded from ``/api/v1/openapi.yaml``. Each operation gets a bounded number of
generated requests, valid and invalid, and every response is checked: never
5xx, status code, content type, headers and body as the document says, valid
requests not refused (other than 401/403/404/409, which the document names),
invalid ones refused.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
import schemathesis
import yaml
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS

from receiver.app import PROCESSOR, RUNNER, create_app
from receiver.config import Settings
from receiver.kube import Kube
from receiver.web.openapi import DOCUMENT
from tests.conftest import Clock
from tests.payloads import body
from tests.test_runs import APPROVAL, crashloop

API_TOKEN = "api-token-0123456789"
HOOK_TOKEN = "hook-token-0123456789"
EXAMPLES = 30
"""Generated requests per operation and token: the whole run stays well under a minute on 2 cores."""
CHECKED = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
]


@contextmanager
def served(app: web.Application) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """Serve ``app`` on 127.0.0.1 (a free port) from a thread of its own; yield its base URL and its loop."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    ready = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="schemathesis-app", daemon=True)
    thread.start()
    assert ready.wait(30), "the app did not start"
    try:
        yield f"http://127.0.0.1:{port[0]}", loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The daemon with an incident and a run waiting for approval in it, served on 127.0.0.1."""
    root = tmp_path_factory.mktemp("schemathesis")
    playbooks = root / "playbooks"
    playbooks.mkdir()
    (playbooks / "careful.yaml").write_text(APPROVAL)
    settings = Settings.model_validate(
        {
            "data_dir": str(root / "data"),
            "api": {"token": API_TOKEN},
            "webhook": {"bearer_token": HOOK_TOKEN, "max_body_bytes": 65536},
            "remediation": {"playbook_dirs": [str(playbooks)]},
            "oncall": {"links": {"secret": "link-secret-0123456789-0123456789-abc"}},
        }
    )
    kube = Kube(None, dry_run=True)
    app = create_app(settings, registry=CollectorRegistry(), clock=Clock(), engine="inline", kube=kube)
    with served(app) as (url, loop):
        _seed(url, app, loop)
        yield url


def _seed(url: str, app: web.Application, loop: asyncio.AbstractEventLoop) -> None:
    """An alert that opens an incident and a run that waits for approval."""
    hook = {"Authorization": f"Bearer {HOOK_TOKEN}", "Content-Type": "application/json"}
    assert requests.post(f"{url}/api/v1/alerts", data=body(crashloop()), headers=hook, timeout=10).status_code == 200

    async def settle() -> None:
        await app[PROCESSOR].drain()
        await app[RUNNER].drain()

    asyncio.run_coroutine_threadsafe(settle(), loop).result(30)
    runs = requests.get(f"{url}/api/v1/runs", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10).json()
    assert [r["status"] for r in runs["runs"]] == ["awaiting_approval"]


def _schema(url: str, token: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.yaml")
    schema.config.update(base_url=url, headers={"Authorization": f"Bearer {token}"})
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES,
        with_security_parameters=False,
        deterministic=True,
        database="none",
    )
    return schema


def _coherent(case: Any) -> bool:
    """Whether a valid request meets the rules across fields the document states in words only.

    An alert's ``endsAt`` is not before its ``startsAt``; times are within years 1 to 9999 in UTC, and
    ``startsAt`` is set (not Go's zero time); JSON text is UTF-8, so strings carry no lone surrogates.
    """
    if isinstance(case.body, dict | list | str) and not _utf8(case.body):
        return False
    if case.operation.path != "/api/v1/alerts" or case.method != "POST":
        return True
    return all(_times_coherent(a) for a in case.body.get("alerts", []) if isinstance(a, dict))


REQUEST_LINE_BYTES = 8190
"""aiohttp's HTTP parser refuses a longer request line (400, text/plain) before any route or middleware sees it."""


def _fits(case: Any) -> bool:
    """Whether the request line fits the HTTP parser's limit: a server limit, the same for every operation.

    Hypothesis draws string literals from the project's own modules, so a module added anywhere can turn a
    generated path parameter into kilobytes of percent-encoded characters; such a request never reaches
    the operation under test.
    """
    path = quote(case.formatted_path, safe="/")
    query = urlencode(case.query or {}, doseq=True)
    return len(path) + len(query) + len(case.method) + 16 < REQUEST_LINE_BYTES


def _utf8(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _times_coherent(alert: dict[str, Any]) -> bool:
    try:
        starts = datetime.fromisoformat(alert["startsAt"]).astimezone(UTC)
        ends = datetime.fromisoformat(alert["endsAt"]).astimezone(UTC) if alert.get("endsAt") else None
    except (ValueError, OverflowError):
        return False
    zero = datetime(1, 1, 1, tzinfo=UTC)
    return starts != zero and (ends is None or ends == zero or ends >= starts)


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation the document names (read from the package; the test loads it served)."""
    spec = yaml.safe_load(DOCUMENT)
    return [(m, path) for path, item in spec["paths"].items() for m in item if m in ("get", "post", "put", "delete")]


@pytest.mark.parametrize(("method", "path"), _operations())
@pytest.mark.parametrize("token", ["api", "webhook"])
def test_every_operation_answers_as_documented(base_url: str, token: str, method: str, path: str) -> None:
    schema = _schema(base_url, API_TOKEN if token == "api" else HOOK_TOKEN)
    operation = schema[path][method.upper()]
    checks = [check for check in CHECKS.get_all() if check.__name__ in CHECKED]
    positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE).filter(_coherent).filter(_fits)
    negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE).filter(_fits)
    strategy = st.one_of(positive, negative)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def check(case: Any) -> None:
        case.call_and_validate(checks=checks)

    check()


def test_every_named_check_exists() -> None:
    assert {check.__name__ for check in CHECKS.get_all()} >= set(CHECKED)
