"""Label matchers: RE2 syntax and cost, as Alertmanager's; a hostile filter never stalls the webhook."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from receiver.alerts import matchers
from receiver.alerts.regex import InvalidRegex, compile_anchored
from receiver.app import PROCESSOR, create_app
from receiver.config import Settings
from tests.conftest import Clock
from tests.payloads import alert, body

PATHOLOGICAL = 'alertname=~"(.*.*)+!"'
"""Exponential for a backtracking engine: Python's ``re`` takes seconds on 14 characters, minutes on 16."""


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('a=~"b|c"', {"a": "c"}, True),
        ('a=~"b"', {"a": "abc"}, False),  # anchored at both ends
        ('a=~"a|ab"', {"a": "ab"}, True),  # the whole value, not the first alternative that matches a prefix
        ('a=~"a.c"', {"a": "a\nc"}, False),  # . does not match a newline, as in Go
        ('a=~"(?i)PROD"', {"a": "prod"}, True),
        ('a=~"[[:digit:]]+"', {"a": "42"}, True),  # RE2's POSIX classes
        ('a=~"\\\\pL+"', {"a": "été"}, True),  # and Unicode classes
        ('a!~"x.*"', {}, True),  # a missing label is the empty string
        ('a=~".*"', {}, True),
    ],
)
def test_regex_matchers_follow_re2(text: str, labels: dict[str, str], expected: bool) -> None:
    assert matchers.parse(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('alertname=~"(a)\\\\1"', "invalid escape sequence: \\1"),  # a backreference
        ('alertname=~"(?=a)a"', "invalid perl operator: (?="),  # a lookahead
        ('alertname!~"(?<!a)b"', "invalid perl operator: (?<"),  # a lookbehind
        ('alertname=~"a++"', "bad repetition operator: ++"),  # possessive
        ('alertname=~"a\\\\Z"', "invalid escape sequence: \\Z"),
        ('alertname=~"a{1001}"', "invalid repetition size"),
    ],
)
def test_python_only_constructs_are_refused_at_parse_naming_the_matcher(text: str, reason: str) -> None:
    with pytest.raises(matchers.InvalidMatcher) as caught:
        matchers.parse(text)
    assert str(caught.value).startswith(repr(text)), caught.value
    assert "RE2 syntax" in str(caught.value) and reason in str(caught.value)


def test_the_wrapper_says_why_re2_refused() -> None:
    with pytest.raises(InvalidRegex, match="missing "):
        compile_anchored("(")
    assert compile_anchored("x+").fullmatch("xxx") and not compile_anchored("x+").fullmatch("xxxy")


LARGE_LABEL_SET = f"""
import time
from receiver.alerts import matchers
matcher = matchers.parse({PATHOLOGICAL!r})
label_sets = [{{"alertname": "a" * (16 + i % 64)}} for i in range(20_000)] + [{{"alertname": "x" * 1_000_000}}]
started = time.perf_counter()
assert not any(matcher.matches(labels) for labels in label_sets)
print(time.perf_counter() - started)
"""


def _seconds_in_a_child(script: str, what: str) -> float:
    """Run ``script`` in a child process (a backtracking engine would hold this interpreter past any timeout)."""
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} took more than 20 s")
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_a_pathological_pattern_costs_linear_time_on_a_large_label_set() -> None:
    assert _seconds_in_a_child(LARGE_LABEL_SET, "matching 20,000 label sets") < 1.0


HOSTILE_MATCHERS = """
import time
from receiver.alerts import matchers
hostile = ["a=" + " " * 4_000 + '"', " " * 4_000 + "a", "a=~" + " " * 4_000 + '"x'] * 10
started = time.perf_counter()
for text in hostile:
    try:
        matchers.parse(text)
    except matchers.InvalidMatcher:
        pass
print(time.perf_counter() - started)
"""


def test_reading_a_hostile_matcher_costs_linear_time_too() -> None:
    # The matcher's own grammar read a filter with Python's re: 'a=' + 2,000 spaces + '"' took 15.7 s.
    assert _seconds_in_a_child(HOSTILE_MATCHERS, "parsing 30 hostile matchers") < 1.0


Client = TestClient[Any, Any]
Serve = Callable[[], Awaitable[Client]]


@pytest.fixture
def served(aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock) -> Serve:
    async def serve() -> Client:
        app = create_app(make_settings(), registry=CollectorRegistry(), clock=clock, engine="inline")
        client: Client = await aiohttp_client(app)  # a real server on 127.0.0.1
        return client

    return serve


async def _timed(request: Awaitable[Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    response = await asyncio.wait_for(request, 30)
    return response, time.perf_counter() - started


async def test_a_pathological_filter_does_not_stall_the_webhook(served: Serve, tmp_path: Path) -> None:
    client = await served()
    names = [f"PodCrashLoop{i}" for i in range(3)]  # 13 characters: seconds each for a backtracking engine
    response = await client.post("/api/v1/alerts", data=body(*(alert(name, namespace="prod") for name in names)))
    assert response.status == 200
    await client.server.app[PROCESSOR].drain()

    listing = asyncio.ensure_future(_timed(client.get("/api/v1/alerts", params={"filter": PATHOLOGICAL})))
    await asyncio.sleep(0)  # the listing is sent first
    webhook, webhook_seconds = await _timed(client.post("/api/v1/alerts", data=body(alert("Other", namespace="x"))))
    (listed, listing_seconds) = await listing

    assert webhook.status == 200 and webhook_seconds < 1.0, webhook_seconds
    assert listed.status == 200 and (await listed.json())["total"] == 0
    assert listing_seconds < 1.0, listing_seconds


async def test_a_filter_the_api_cannot_honour_like_alertmanager_gets_400(
    served: Serve,
) -> None:
    client = await served()
    response = await client.get("/api/v1/alerts", params={"filter": 'alertname=~"(?=Kube)K.*"'})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error.startswith("filter: 'alertname=~\"(?=Kube)K.*\"'") and "RE2 syntax" in error


@pytest.mark.parametrize("space", [" ", "\t", "\n", "\v", "\f", "\r", "\x1c", "\x85", "\u3000"])
def test_whitespace_around_a_matcher_is_whitespace_as_json_schema_and_python_see_it(space: str) -> None:
    # RE2's \s leaves out \v: schemathesis found a filter the document allows refused with 400.
    parsed = matchers.parse(f'{space}name{space}!~{space}"x"{space}')
    assert (parsed.name, parsed.op, parsed.value) == ("name", "!~", "x")
