"""HTTP behaviour of the webhook, the alerts API, health and metrics.

Every rejection is checked twice: the status and JSON error the sender sees,
and that nothing reached the store.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from receiver.app import PROCESSOR, create_app
from receiver.config import Settings
from receiver.store.sqlite import SQLiteStore, inbox_path
from tests.conftest import Clock, fixture_bytes
from tests.payloads import alert, body

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_client(aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock) -> MakeClient:
    async def make(store_impl: Any = None, **raw: Any) -> Client:
        registry = CollectorRegistry()
        app = create_app(make_settings(**raw), registry=registry, clock=clock, store=store_impl, engine="inline")
        client: Client = await aiohttp_client(app)
        client.registry = registry  # type: ignore[attr-defined]
        return client

    return make


def sample(client: Client, name: str, **labels: str) -> float:
    value = client.registry.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return 0.0 if value is None else float(value)


async def processed(client: Client) -> None:
    """Wait until every accepted notification is processed."""
    await client.server.app[PROCESSOR].drain()


async def stored(client: Client) -> list[dict[str, Any]]:
    await processed(client)
    response = await client.get("/api/v1/alerts")
    assert response.status == 200
    data: list[dict[str, Any]] = (await response.json())["alerts"]
    return data


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_accepts_a_notification_and_answers_after_commit(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post("/api/v1/alerts", data=fixture_bytes("02-firing-crashlooping-3-pods.json"))
    assert response.status == 200
    assert await response.json() == {"status": "accepted", "alerts": 3, "inboxSeq": 1}
    assert len(await stored(client)) == 3
    assert sample(client, "receiver_notifications_total", result="accepted") == 1
    assert sample(client, "receiver_alerts_received_total", status="firing") == 3


async def test_ha_duplicate_is_counted_and_changes_nothing(make_client: MakeClient, clock: Clock) -> None:
    client = await make_client()
    assert (await client.post("/api/v1/alerts", data=fixture_bytes("06-ha-peer-a.json"))).status == 200
    before = await stored(client)
    clock.advance(seconds=1)
    response = await client.post("/api/v1/alerts", data=fixture_bytes("06-ha-peer-b.json"))
    assert response.status == 200
    after = await stored(client)
    assert [{**a, "lastSeen": None} for a in after] == [{**a, "lastSeen": None} for a in before]
    assert sample(client, "receiver_notifications_total", result="duplicate") == 1
    assert sample(client, "receiver_alert_duplicates_total") == 1


AUTH_CASES = {
    "no header": {},
    "wrong bearer": {"Authorization": "Bearer nope"},
    "empty bearer": {"Authorization": "Bearer "},
    "wrong scheme": {"Authorization": "Token s3cret"},
    "basic with wrong password": {"Authorization": basic("am", "nope")},
    "basic with wrong user": {"Authorization": basic("root", "pw")},
    "basic not base64": {"Authorization": "Basic ***"},
    "basic without colon": {"Authorization": "Basic " + base64.b64encode(b"ampw").decode()},
}


@pytest.mark.parametrize("headers", AUTH_CASES.values(), ids=AUTH_CASES.keys())
async def test_wrong_or_missing_credentials_get_401_and_store_nothing(
    make_client: MakeClient, headers: dict[str, str]
) -> None:
    client = await make_client(webhook={"bearer_token": "s3cret", "basic_auth": {"username": "am", "password": "pw"}})
    response = await client.post("/api/v1/alerts", data=body(alert("A")), headers=headers)
    assert response.status == 401
    assert (await response.json())["error"] == "missing or invalid credentials"
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert await stored(client) == []
    assert sample(client, "receiver_notifications_total", result="rejected_auth") == 1


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", basic("am", "pw")])
async def test_valid_credentials_are_accepted(make_client: MakeClient, header: str) -> None:
    client = await make_client(webhook={"bearer_token": "s3cret", "basic_auth": {"username": "am", "password": "pw"}})
    response = await client.post("/api/v1/alerts", data=body(alert("A")), headers={"Authorization": header})
    assert response.status == 200


INVALID_BODIES = {
    "not json": (b"{", "body"),
    "a list": (b"[]", "body"),
    "wrong version": (json.dumps({"version": "3", "alerts": []}).encode(), "version"),
    "no alerts": (json.dumps({"version": "4"}).encode(), "alerts"),
    "bad status": (body({**alert("A"), "status": "pending"}), "alerts[0].status"),
    "bad startsAt": (body({**alert("A"), "startsAt": "noon"}), "alerts[0].startsAt"),
    "label not a string": (body({**alert("A"), "labels": {"alertname": 1}}), "alerts[0].labels.alertname"),
}


@pytest.mark.parametrize(("data", "field"), INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
async def test_invalid_body_gets_400_naming_the_field(make_client: MakeClient, data: bytes, field: str) -> None:
    client = await make_client()
    response = await client.post("/api/v1/alerts", data=data)
    assert response.status == 400
    payload = await response.json()
    assert payload["error"] == "invalid notification"
    assert field in [p["field"] for p in payload["problems"]]
    assert await stored(client) == []
    assert sample(client, "receiver_notifications_total", result="rejected_invalid") == 1


async def test_one_bad_alert_rejects_the_whole_notification(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post("/api/v1/alerts", data=body(alert("Good"), {**alert("Bad"), "startsAt": 5}))
    assert response.status == 400
    assert await stored(client) == []


async def test_oversized_body_gets_413(make_client: MakeClient) -> None:
    client = await make_client(webhook={"max_body_bytes": 2048})
    big = body(*[alert(f"A{i}", pad="x" * 100) for i in range(40)])
    response = await client.post("/api/v1/alerts", data=big)
    assert response.status == 413
    assert (await response.json())["limit"] == 2048
    assert await stored(client) == []
    assert sample(client, "receiver_notifications_total", result="rejected_too_large") == 1


async def test_oversized_chunked_body_without_length_gets_413(make_client: MakeClient) -> None:
    client = await make_client(webhook={"max_body_bytes": 2048})
    big = body(*[alert(f"A{i}", pad="x" * 100) for i in range(40)])

    async def chunks() -> Any:
        for i in range(0, len(big), 500):
            yield big[i : i + 500]

    response = await client.post("/api/v1/alerts", data=chunks())
    assert response.status == 413
    assert await stored(client) == []


class GatedStore:
    """A real SQLite store whose commits wait until the test opens the gate."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def accept(self, body: bytes, received_at: datetime) -> int:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.accept(body, received_at)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _wait_for(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_saturated_queue_gets_503_and_stores_nothing_of_it(make_client: MakeClient, tmp_path: Path) -> None:
    inner = SQLiteStore(tmp_path / "gated.db")
    await inner.open()
    store = GatedStore(inner)
    client = await make_client(store_impl=store, store={"max_pending": 3})
    first = asyncio.create_task(client.post("/api/v1/alerts", data=body(alert("A1"))))
    await asyncio.wait_for(store.entered.wait(), 5)  # A1 waits for its commit
    queued = [asyncio.create_task(client.post("/api/v1/alerts", data=body(alert(f"A{i}")))) for i in (2, 3)]

    async def queue_full() -> bool:
        text = await (await client.get("/metrics")).text()
        return "receiver_ingest_queue_depth 3.0" in text

    await _wait_for(queue_full, "three notifications waiting for commit")
    refused = await client.post("/api/v1/alerts", data=body(alert("A4")))
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "5"
    assert (await refused.json())["retryable"] is True
    store.gate.set()
    assert [(await t).status for t in [first, *queued]] == [200, 200, 200]
    names = sorted(a["labels"]["alertname"] for a in await stored(client))
    assert names == ["A1", "A2", "A3"]
    assert sample(client, "receiver_notifications_total", result="overloaded") == 1
    retried = await client.post("/api/v1/alerts", data=body(alert("A4")))
    assert retried.status == 200
    await inner.close()


class StalledProcessingStore(GatedStore):
    """A real SQLite store whose processing waits until the test opens the gate."""

    async def accept(self, body: bytes, received_at: datetime) -> int:
        return await self.inner.accept(body, received_at)

    async def process(self, batch: Any) -> None:
        self.entered.set()
        await self.gate.wait()
        await self.inner.process(batch)


async def test_processing_backlog_over_the_limit_gets_503(make_client: MakeClient, tmp_path: Path) -> None:
    inner = SQLiteStore(tmp_path / "stalled.db")
    await inner.open()
    store = StalledProcessingStore(inner)
    client = await make_client(store_impl=store, store={"max_backlog": 2})
    for i in (1, 2):
        assert (await client.post("/api/v1/alerts", data=body(alert(f"B{i}")))).status == 200
    await asyncio.wait_for(store.entered.wait(), 5)  # processing is stuck on B1
    refused = await client.post("/api/v1/alerts", data=body(alert("B3")))
    assert refused.status == 503
    assert "wait for processing" in (await refused.json())["error"]
    text = await (await client.get("/metrics")).text()
    assert "receiver_inbox_backlog 2.0" in text
    store.gate.set()
    names = sorted(a["labels"]["alertname"] for a in await stored(client))
    assert names == ["B1", "B2"]
    assert (await client.post("/api/v1/alerts", data=body(alert("B3")))).status == 200
    await inner.close()


async def test_store_failure_gets_503_and_readyz_fails(make_client: MakeClient, tmp_path: Path) -> None:
    client = await make_client(store={"busy_timeout": "100ms"})
    blocker = sqlite3.connect(inbox_path(tmp_path / "data" / "receiver.db"), isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        response = await client.post("/api/v1/alerts", data=body(alert("A")))
        assert response.status == 503
        assert sample(client, "receiver_notifications_total", result="store_error") == 1
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert "locked" in (await ready.json())["store"]
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    assert await stored(client) == []
    assert (await client.get("/readyz")).status == 200
    assert (await client.post("/api/v1/alerts", data=body(alert("A")))).status == 200


async def test_health_endpoints(make_client: MakeClient) -> None:
    client = await make_client()
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ok", "config": "loaded", "store": "writable"}


async def test_unknown_route_and_method_get_json_errors(make_client: MakeClient) -> None:
    client = await make_client()
    missing = await client.get("/nope")
    assert missing.status == 404 and (await missing.json())["error"] == "Not Found"
    wrong = await client.delete("/api/v1/alerts")
    assert wrong.status == 405 and "error" in await wrong.json()


async def _post_all(client: Client, *alerts: dict[str, Any]) -> None:
    response = await client.post("/api/v1/alerts", data=body(*alerts))
    assert response.status == 200
    await processed(client)


async def test_alert_listing_filters(make_client: MakeClient) -> None:
    client = await make_client()
    await _post_all(
        client,
        alert("HighErrorRate", namespace="prod", severity="critical"),
        alert("HighLatency", namespace="prod", severity="warning"),
        alert("HighLatency", namespace="staging", severity="warning"),
    )
    await _post_all(client, alert("DiskFull", status="resolved", namespace="prod"))

    async def names(query: str) -> list[str]:
        response = await client.get("/api/v1/alerts?" + query)
        assert response.status == 200, await response.text()
        return sorted(
            f"{a['labels']['alertname']}/{a['labels']['namespace']}" for a in (await response.json())["alerts"]
        )

    assert await names('filter=namespace="prod"&status=firing') == ["HighErrorRate/prod", "HighLatency/prod"]
    assert await names('filter=alertname=~"High.*"&filter=namespace!="prod"') == ["HighLatency/staging"]
    assert await names("status=resolved") == ["DiskFull/prod"]
    assert await names("status=firing,resolved&limit=2") != []
    listing = await (await client.get("/api/v1/alerts?limit=1&offset=1")).json()
    assert listing["total"] == 4 and len(listing["alerts"]) == 1
    first = (await (await client.get("/api/v1/alerts?status=resolved")).json())["alerts"][0]
    assert first["status"] == "resolved" and first["flapping"] is False and first["endsAt"] is not None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=pending", "status: must be among firing, resolved, expired"),
        ("filter=nope", "filter: 'nope' is not a matcher"),
        ('filter=a=~"("', "invalid regular expression"),
        ("limit=0", "limit: must be a whole number, 1 to 10000"),
        ("limit=abc", "limit:"),
        ("offset=-1", "offset: must be a whole number, 0 or more"),
    ],
)
async def test_alert_listing_rejects_bad_queries(make_client: MakeClient, query: str, message: str) -> None:
    client = await make_client()
    response = await client.get("/api/v1/alerts?" + query)
    assert response.status == 400
    assert message in (await response.json())["error"]


async def test_api_token_protects_the_listing_not_the_webhook(make_client: MakeClient) -> None:
    client = await make_client(api={"token": "api-secret"}, webhook={"bearer_token": "hook-secret"})
    assert (await client.get("/api/v1/alerts")).status == 401
    assert (await client.get("/api/v1/alerts", headers={"Authorization": "Bearer hook-secret"})).status == 401
    ok = await client.get("/api/v1/alerts", headers={"Authorization": "Bearer api-secret"})
    assert ok.status == 200
    hook = await client.post("/api/v1/alerts", data=body(alert("A")), headers={"Authorization": "Bearer api-secret"})
    assert hook.status == 401


async def test_metrics_exposition(make_client: MakeClient) -> None:
    client = await make_client()
    await _post_all(client, alert("A"), alert("B"))
    await _post_all(client, alert("A"))
    text = await (await client.get("/metrics")).text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in [
        "receiver_notifications",
        "receiver_alerts_received",
        "receiver_alert_duplicates",
        "receiver_active_alerts",
        "receiver_alerts",
        "receiver_http_request_duration_seconds",
        "receiver_store_commit_duration_seconds",
        "receiver_inbox_backlog",
        "receiver_ingest_queue_depth",
        "receiver_build_info",
    ]:
        assert name in families, name
    assert sample(client, "receiver_active_alerts") == 2
    assert sample(client, "receiver_alerts", status="firing") == 2
    assert sample(client, "receiver_alert_duplicates_total") == 1
    assert sample(client, "receiver_http_request_duration_seconds_count", route="/api/v1/alerts", method="POST") == 2
    assert sample(client, "receiver_store_commit_duration_seconds_count") >= 1
    for family in families.values():
        for s in family.samples:
            assert set(s.labels) <= {
                "result",
                "status",
                "outcome",
                "route",
                "method",
                "le",
                "version",
                "python",
                "severity",
                "playbook",  # bounded: playbook names come from the configuration, never from an alert
                "action",
                "reason",
                "state",  # bounded: a connection is open or waiting
            }


async def _listed(client: Client, status: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/alerts?status={status}")
    data: list[dict[str, Any]] = (await response.json())["alerts"]
    return data


async def test_silent_firing_alert_expires_and_a_repeat_revives_it(make_client: MakeClient, clock: Clock) -> None:
    client = await make_client(alerts={"expire_after": "1h", "expiry_check_interval": "20ms"})
    await _post_all(client, alert("Silent"))
    clock.advance(hours=2)

    async def expired() -> bool:  # the counter moves just after the commit the listing sees
        return len(await _listed(client, "expired")) == 1 and sample(client, "receiver_alerts_expired_total") == 1

    await _wait_for(expired, "the upkeep loop to expire the silent alert, and count it once")
    await _post_all(client, alert("Silent"))  # Alertmanager repeats it: it was firing all along
    assert [a["labels"]["alertname"] for a in await _listed(client, "firing")] == ["Silent"]


async def test_resolved_alerts_are_forgotten_after_the_retention_firing_ones_never(
    make_client: MakeClient, clock: Clock
) -> None:
    client = await make_client(alerts={"retention": "1h", "expire_after": "48h", "expiry_check_interval": "20ms"})
    await _post_all(client, alert("StaysFiring"), alert("Resolves"))
    await _post_all(client, alert("Resolves", status="resolved"))
    clock.advance(hours=2)

    async def forgotten() -> bool:
        return [a["labels"]["alertname"] for a in await _listed(client, "firing,resolved,expired")] == ["StaysFiring"]

    await _wait_for(forgotten, "the upkeep loop to forget the resolved alert")


async def test_an_alert_that_keeps_flipping_is_flagged_flapping(make_client: MakeClient, clock: Clock) -> None:
    client = await make_client(alerts={"flap_threshold": 2, "flap_window": "1h"})
    for episode in range(3):
        starts = f"2026-11-22T09:{episode * 10:02d}:00Z"
        await _post_all(client, alert("Flappy", starts=starts))
        clock.advance(minutes=1)
        await _post_all(client, alert("Flappy", status="resolved", starts=starts))
        clock.advance(minutes=1)
        [state] = await _listed(client, "firing,resolved")
        assert state["flapping"] is (episode >= 1), episode  # 3 flips by the 2nd episode's resolve
    assert sample(client, "receiver_alerts_flapping_total") == 1
    clock.advance(hours=2)
    [state] = await _listed(client, "resolved")
    assert state["flapping"] is False  # the flips left the window
