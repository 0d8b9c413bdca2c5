"""The fake PagerDuty Events API v2 behaves as PagerDuty documents (see tests/fakes/pagerduty.py for the URLs)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import Clock
from tests.fakes.pagerduty import PagerDutyFake, alert_event_problems
from tests.fakes.server import Fault

KEY = "R0123456789abcdef0123456789abcde"  # 32 characters, as an integration key
OTHER_KEY = "Pfedcba9876543210fedcba987654321"
assert len(KEY) == len(OTHER_KEY) == 32


def trigger(dedup_key: str | None = "inc-1", routing_key: str = KEY, **payload: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "payload": {"summary": "KubePodCrashLooping in shop", "source": "receiver", "severity": "critical", **payload},
        "links": [{"href": "https://receiver.example/incidents/inc-1", "text": "Incident"}],
        "client": "receiver",
        "client_url": "https://receiver.example/",
    }
    if dedup_key is not None:
        event["dedup_key"] = dedup_key
    return event


def follow_up(action: str, dedup_key: str = "inc-1", routing_key: str = KEY) -> dict[str, Any]:
    return {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}


def status_of(fake: PagerDutyFake, dedup_key: str = "inc-1") -> str | None:
    alert = fake.alert(dedup_key)
    return None if alert is None else alert.status


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[PagerDutyFake]:
    async with PagerDutyFake(clock=clock) as server:
        yield server


async def send(http: aiohttp.ClientSession, url: str, event: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    data = event if isinstance(event, bytes) else json.dumps(event).encode()
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as response:
        return response.status, await response.json(content_type=None), response


async def test_trigger_is_accepted_with_its_dedup_key_and_opens_one_alert(
    fake: PagerDutyFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    status, body, _ = await send(http, fake.enqueue_url, trigger())
    assert (status, body) == (202, {"status": "success", "message": "Event processed", "dedup_key": "inc-1"})
    alert = fake.alert("inc-1")
    assert alert is not None and alert.status == "triggered" and alert.opened_at == clock.now
    assert alert.payload["severity"] == "critical"
    [received] = fake.requests
    assert received.path == "/v2/enqueue" and received.body["dedup_key"] == "inc-1" and received.at == clock.now


async def test_a_trigger_without_dedup_key_gets_a_generated_one_and_always_a_new_alert(
    fake: PagerDutyFake, http: aiohttp.ClientSession
) -> None:
    _, first, _ = await send(http, fake.enqueue_url, trigger(dedup_key=None))
    _, second, _ = await send(http, fake.enqueue_url, trigger(dedup_key=None))
    assert first["dedup_key"] and second["dedup_key"] and first["dedup_key"] != second["dedup_key"]
    assert fake.pages() == 2
    assert fake.alert(first["dedup_key"]) is not None


async def test_triggers_for_an_open_key_page_once(fake: PagerDutyFake, http: aiohttp.ClientSession) -> None:
    for summary in ("first", "worse", "worse still"):
        status, body, _ = await send(http, fake.enqueue_url, trigger(summary=summary))
        assert status == 202 and body["dedup_key"] == "inc-1"
    assert fake.pages("inc-1") == 1
    alert = fake.alert("inc-1")
    assert alert is not None and alert.triggers == 3
    assert [o.effect for o in fake.outcomes] == ["created", "deduplicated", "deduplicated"]


async def test_acknowledge_then_resolve_then_a_trigger_opens_a_new_alert(
    fake: PagerDutyFake, http: aiohttp.ClientSession
) -> None:
    await send(http, fake.enqueue_url, trigger())
    assert (await send(http, fake.enqueue_url, follow_up("acknowledge")))[0] == 202
    assert status_of(fake) == "acknowledged"
    await send(http, fake.enqueue_url, trigger(summary="again while acknowledged"))
    assert fake.pages("inc-1") == 1 and status_of(fake) == "acknowledged"
    await send(http, fake.enqueue_url, follow_up("resolve"))
    assert status_of(fake) == "resolved"
    await send(http, fake.enqueue_url, trigger())
    assert fake.pages("inc-1") == 2 and status_of(fake) == "triggered"


async def test_follow_ups_for_unknown_or_resolved_keys_or_another_routing_key_are_dropped(
    fake: PagerDutyFake, http: aiohttp.ClientSession
) -> None:
    assert (await send(http, fake.enqueue_url, follow_up("resolve", "never-triggered")))[0] == 202
    await send(http, fake.enqueue_url, trigger())
    await send(http, fake.enqueue_url, follow_up("acknowledge", routing_key=OTHER_KEY))
    assert status_of(fake) == "triggered"
    await send(http, fake.enqueue_url, follow_up("resolve"))
    await send(http, fake.enqueue_url, follow_up("acknowledge"))
    assert status_of(fake) == "resolved"
    assert [o.effect for o in fake.outcomes] == ["dropped", "created", "dropped", "resolved", "dropped"]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({**trigger(), "routing_key": "short"}, "Length of 'routing_key' is incorrect (should be 32 characters)"),
        ({**trigger(), "event_action": "escalate"}, "'event_action' must be one of trigger, acknowledge, resolve"),
        (
            {k: v for k, v in follow_up("resolve").items() if k != "dedup_key"},
            "'dedup_key' is required for resolve events",
        ),
        (trigger(dedup_key="k" * 256), "'dedup_key' is too long (maximum is 255 characters)"),
        (trigger(summary="s" * 1025), "'payload.summary' is too long (maximum is 1024 characters)"),
        (trigger(severity="high"), "'payload.severity' must be one of critical, error, info, warning"),
        (trigger(source=""), "'payload.source' is missing or blank"),
        (trigger(timestamp="yesterday"), "'payload.timestamp' is not an ISO 8601 timestamp"),
        (trigger(custom_details="text"), "'payload.custom_details' must be an object"),
        ({**trigger(), "links": [{"text": "no href"}]}, "'links[0].href' is missing or blank"),
        ({**trigger(), "images": [{"src": "http://plain.example/x.png"}]}, "'images[0].src' must be served over HTTPS"),
        ({k: v for k, v in trigger().items() if k != "payload"}, "'payload' is missing or not an object"),
    ],
)
async def test_invalid_events_are_answered_400_naming_the_problem_and_change_nothing(
    fake: PagerDutyFake, http: aiohttp.ClientSession, event: dict[str, Any], error: str
) -> None:
    status, body, _ = await send(http, fake.enqueue_url, event)
    assert status == 400
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert error in body["errors"]
    assert fake.alerts == [] and fake.outcomes == [] and len(fake.requests) == 1


async def test_the_documented_example_trigger_is_valid() -> None:
    example = {
        "payload": {
            "summary": "Example alert on host1.example.com",
            "timestamp": "2015-07-17T08:42:58.315+0000",
            "source": "monitoringtool:cloudvendor:central-region-dc-01:852559987:cluster/api-stats-prod-003",
            "severity": "info",
            "component": "postgres",
            "group": "prod-datapipe",
            "class": "deploy",
            "custom_details": {"ping time": "1500ms", "load avg": 0.75},
        },
        "routing_key": KEY,
        "dedup_key": "samplekeyhere",
        "images": [{"src": "https://www.pagerduty.com/logo.png", "href": "https://example.com/", "alt": "Example"}],
        "links": [{"href": "https://example.com/", "text": "Link text"}],
        "event_action": "trigger",
        "client": "Sample Monitoring Service",
        "client_url": "https://monitoring.example.com",
    }
    assert alert_event_problems(example) == []


async def test_not_json_is_400(fake: PagerDutyFake, http: aiohttp.ClientSession) -> None:
    status, body, _ = await send(http, fake.enqueue_url, b"routing_key=x")
    assert status == 400 and body["status"] == "invalid event"


async def test_a_body_over_512_kb_is_refused_and_one_just_under_is_accepted(
    fake: PagerDutyFake, http: aiohttp.ClientSession
) -> None:
    def sized(total: int) -> bytes:
        event = trigger(custom_details={"pad": ""})
        base = len(json.dumps(event).encode())
        event["payload"]["custom_details"]["pad"] = "x" * (total - base)
        data = json.dumps(event).encode()
        assert len(data) == total
        return data

    status, body, _ = await send(http, fake.enqueue_url, sized(512 * 1024 + 1))
    assert status == 400 and "512 KB" in body["errors"][0]
    assert fake.alerts == []
    status, _, _ = await send(http, fake.enqueue_url, sized(512 * 1024))
    assert status == 202 and fake.pages("inc-1") == 1


async def test_unknown_routing_key_when_the_fake_knows_its_keys(clock: Clock, http: aiohttp.ClientSession) -> None:
    async with PagerDutyFake(clock=clock, routing_keys=[KEY]) as fake:
        status, body, _ = await send(http, fake.enqueue_url, trigger(routing_key=OTHER_KEY))
        assert status == 400 and body["errors"] == ["Invalid routing key"]
        assert (await send(http, fake.enqueue_url, trigger()))[0] == 202


async def test_rate_limit_per_routing_key_over_a_rolling_minute(clock: Clock, http: aiohttp.ClientSession) -> None:
    async with PagerDutyFake(clock=clock, rate_limit=3) as fake:
        for n in range(3):
            assert (await send(http, fake.enqueue_url, trigger(f"k{n}")))[0] == 202
            clock.advance(seconds=10)
        status, body, _ = await send(http, fake.enqueue_url, trigger("k3"))
        assert status == 429 and body["status"] == "throttle event"
        assert fake.alert("k3") is None
        # Another integration key has its own budget.
        assert (await send(http, fake.enqueue_url, trigger("k3", routing_key=OTHER_KEY)))[0] == 202
        # The first event (at 0 s) leaves the 60-second window at 60 s: now is 30 s.
        clock.advance(seconds=29)
        assert (await send(http, fake.enqueue_url, trigger("k3")))[0] == 429
        clock.advance(seconds=1)
        assert (await send(http, fake.enqueue_url, trigger("k3")))[0] == 202


async def test_the_default_rate_limit_is_the_documented_120_a_minute(
    fake: PagerDutyFake, http: aiohttp.ClientSession
) -> None:
    for n in range(120):
        assert (await send(http, fake.enqueue_url, trigger(f"k{n}")))[0] == 202
    assert (await send(http, fake.enqueue_url, trigger("k120")))[0] == 429


async def test_scripted_faults_answer_in_order_and_are_not_ingested(
    fake: PagerDutyFake, http: aiohttp.ClientSession
) -> None:
    fake.faults.add(Fault.json(429, {"status": "throttle event"}, retry_after=3), times=2)
    fake.faults.add(Fault.status_only(500))
    answers = [await send(http, fake.enqueue_url, trigger()) for _ in range(4)]
    assert [a[0] for a in answers] == [429, 429, 500, 202]
    assert answers[0][2].headers["Retry-After"] == "3"
    assert fake.pages("inc-1") == 1 and len(fake.requests) == 4 and fake.faults.pending == 0


async def test_change_events(fake: PagerDutyFake, http: aiohttp.ClientSession) -> None:
    event = {
        "routing_key": KEY,
        "payload": {
            "summary": "Rolled back shop/web to revision 41",
            "source": "receiver",
            "custom_details": {"run": 7},
        },
        "links": [{"href": "https://receiver.example/runs/7"}],
    }
    status, body, _ = await send(http, fake.change_url, event)
    assert (status, body) == (202, {"status": "success", "message": "Change event processed"})
    assert fake.change_events == [event] and fake.alerts == []
    status, body, _ = await send(http, fake.change_url, {"routing_key": KEY, "payload": {"summary": ""}})
    assert status == 400 and "'payload.summary' is missing or blank" in body["errors"]
