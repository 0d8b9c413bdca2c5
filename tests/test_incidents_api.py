"""The incident API over HTTP: listing, detail, changes, every error path, persistence across restarts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from receiver.app import PROCESSOR, create_app
from receiver.config import ConfigError, Settings, load
from receiver.store import StoreError
from receiver.store.sqlite import SQLiteStore
from tests.conftest import Clock
from tests.payloads import alert, body
from tests.test_http import Client, MakeClient, make_client, processed, sample

__all__ = ["make_client"]  # the fixture, used by name
TOKEN = "api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DATABASE_DOWN = {
    "name": "database",
    "root": ['alertname="DatabaseDown"'],
    "symptoms": ['alertname=~"HighLatency|HighErrorRate"'],
    "equal": ["cluster"],
}


async def post(client: Client, *alerts: dict[str, Any]) -> None:
    response = await client.post("/api/v1/alerts", data=body(*alerts), headers={"Content-Type": "application/json"})
    assert response.status == 200, await response.text()
    await processed(client)


async def get_json(client: Client, path: str, status: int = 200, **kwargs: Any) -> Any:
    response = await client.get(path, **kwargs)
    assert response.status == status, await response.text()
    return await response.json()


async def change(client: Client, path: str, payload: Any = None, status: int = 200, **kwargs: Any) -> Any:
    data = json.dumps(payload) if payload is not None else None
    response = await client.post(path, data=data, headers={**AUTH, **kwargs.pop("headers", {})}, **kwargs)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client(api={"token": TOKEN}, incidents={"suppression": [DATABASE_DOWN]})


async def burst(client: Client) -> str:
    await post(
        client,
        alert("PodCrashLooping", namespace="shop", service="cart", severity="warning", cluster="eu1"),
        alert("HighMemory", namespace="shop", service="checkout", severity="critical", cluster="eu1"),
    )
    listed = await get_json(client, "/api/v1/incidents", headers=AUTH)
    [incident] = listed["incidents"]
    return str(incident["id"])


async def test_a_burst_makes_one_incident_with_its_alerts_severity_and_timeline(client: Client) -> None:
    id = await burst(client)
    assert id == "INC-20261122-0001"
    detail = await get_json(client, f"/api/v1/incidents/{id}", headers=AUTH)
    assert detail["status"] == "triggered" and detail["severity"] == "SEV2"
    assert detail["services"] == ["shop/cart", "shop/checkout"] and detail["alertCount"] == 2 and detail["firing"] == 2
    assert detail["title"] == "PodCrashLooping in namespace shop"
    assert {a["labels"]["alertname"] for a in detail["alerts"]} == {"PodCrashLooping", "HighMemory"}
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[:2] == ["alert_fired", "correlated"] and "classified" in kinds
    assert any("label severity='critical' -> SEV2" in r for r in detail["severityReasons"])


async def test_listing_filters_and_pages(client: Client, clock: Clock) -> None:
    await burst(client)
    await post(client, alert("DiskFull", namespace="billing", service="ledger", severity="info"))
    everything = await get_json(client, "/api/v1/incidents", headers=AUTH)
    assert [i["title"] for i in everything["incidents"]] == [
        "DiskFull in namespace billing",
        "PodCrashLooping in namespace shop",
    ]
    assert everything["next"] is None
    sev4 = await get_json(client, "/api/v1/incidents?severity=SEV4", headers=AUTH)
    assert [i["scope"] for i in sev4["incidents"]] == ["namespace:billing"]
    by_service = await get_json(client, "/api/v1/incidents?service=shop/checkout", headers=AUTH)
    assert [i["scope"] for i in by_service["incidents"]] == ["namespace:shop"]
    page1 = await get_json(client, "/api/v1/incidents?limit=1", headers=AUTH)
    page2 = await get_json(client, f"/api/v1/incidents?limit=1&before={page1['next']}", headers=AUTH)
    assert [i["scope"] for i in page1["incidents"] + page2["incidents"]] == ["namespace:billing", "namespace:shop"]
    resolved = await get_json(client, "/api/v1/incidents?status=resolved,acknowledged", headers=AUTH)
    assert resolved["incidents"] == []


async def test_acknowledge_then_resolve_records_who_and_counts_mtta_and_mttr(client: Client, clock: Clock) -> None:
    id = await burst(client)
    clock.advance(seconds=90)
    acked = await change(client, f"/api/v1/incidents/{id}/ack", {"actor": "alice", "reason": "looking"})
    assert acked["status"] == "acknowledged" and acked["acknowledgedAt"] == clock.now.isoformat()
    assert acked["timeline"][-1] == {
        "at": clock.now.isoformat(),
        "kind": "acknowledged",
        "text": "looking",
        "actor": "alice",
        "fingerprint": None,
    }
    assert sample(client, "receiver_incident_time_to_acknowledge_seconds_sum", severity="SEV2") == 90
    clock.advance(seconds=30)
    resolved = await change(client, f"/api/v1/incidents/{id}/resolve")
    assert resolved["status"] == "resolved" and resolved["timeline"][-1]["actor"] == "api"
    assert sample(client, "receiver_incident_time_to_resolve_seconds_count", severity="SEV2") == 1
    again = await change(client, f"/api/v1/incidents/{id}/resolve", status=409)
    assert again == {"error": "an incident that is resolved cannot become resolved"}
    await change(client, f"/api/v1/incidents/{id}/ack", status=409)


async def test_notes_are_added_and_bad_notes_refused(client: Client) -> None:
    id = await burst(client)
    noted = await change(client, f"/api/v1/incidents/{id}/notes", {"text": "rolled back cart", "actor": "bob"}, 201)
    assert noted["timeline"][-1]["kind"] == "note" and noted["timeline"][-1]["text"] == "rolled back cart"
    for payload, field in (
        ({}, "text"),
        ({"text": "  "}, "text"),
        ({"text": 5}, "text"),
        ({"text": "x", "actor": ""}, "actor"),
    ):
        error = await change(client, f"/api/v1/incidents/{id}/notes", payload, 400)
        assert error["error"].startswith(field)
    for raw in (b"not json", b"[1]"):
        response = await client.post(f"/api/v1/incidents/{id}/notes", data=raw, headers=AUTH)
        assert response.status == 400 and "JSON object" in (await response.json())["error"]
    response = await client.post(f"/api/v1/incidents/{id}/notes", headers=AUTH)
    assert response.status == 400


async def test_unknown_incidents_get_404(client: Client) -> None:
    await get_json(client, "/api/v1/incidents/INC-20200101-0001", 404, headers=AUTH)
    for action in ("ack", "mitigate", "resolve"):
        error = await change(client, f"/api/v1/incidents/INC-20200101-0001/{action}", status=404)
        assert error == {"error": "no incident INC-20200101-0001"}
    await change(client, "/api/v1/incidents/INC-20200101-0001/notes", {"text": "x"}, 404)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=bogus", "status: must be among triggered"),
        ("severity=SEV9", "severity: must be among SEV1"),
        ("limit=0", "limit: must be a whole number from 1 to 500"),
        ("limit=501", "limit"),
        ("before=abc", "before:"),
    ],
)
async def test_bad_listing_queries_get_400(client: Client, query: str, message: str) -> None:
    error = await get_json(client, f"/api/v1/incidents?{query}", 400, headers=AUTH)
    assert error["error"].startswith(message)


async def test_credentials(make_client: MakeClient, client: Client) -> None:
    id = await burst(client)
    assert (await client.get("/api/v1/incidents")).status == 401
    assert (await client.post(f"/api/v1/incidents/{id}/ack", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await client.post(f"/api/v1/incidents/{id}/ack")).status == 401
    open_reads = await make_client()  # no token: reads are open, changes are refused
    assert (await open_reads.get("/api/v1/incidents")).status == 200
    refused = await open_reads.post("/api/v1/incidents/INC-20261122-0001/ack")
    assert refused.status == 403 and "api.token" in (await refused.json())["error"]


def test_the_api_token_must_differ_from_the_webhook_credentials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"api\.token must differ"):
        load(None, {}, {"data_dir": str(tmp_path), "api": {"token": TOKEN}, "webhook": {"bearer_token": TOKEN}})
    with pytest.raises(ConfigError, match=r"api\.token must differ"):
        load(None, {}, {"data_dir": str(tmp_path), "api": {"token": TOKEN},
                        "webhook": {"basic_auth": {"username": "am", "password": TOKEN}}})  # fmt: skip


async def test_symptoms_join_the_root_cause_and_are_counted(client: Client) -> None:
    await post(client, alert("DatabaseDown", namespace="data", service="postgres", cluster="eu1", severity="critical"))
    await post(client, alert("HighLatency", namespace="api", service="api", cluster="eu1", severity="warning"))
    [incident] = (await get_json(client, "/api/v1/incidents", headers=AUTH))["incidents"]
    detail = await get_json(client, f"/api/v1/incidents/{incident['id']}", headers=AUTH)
    assert [s["labels"]["alertname"] for s in detail["symptoms"]] == ["HighLatency"]
    assert detail["symptoms"][0]["root"] == detail["alerts"][0]["fingerprint"]
    assert sample(client, "receiver_alerts_suppressed_total") == 1


async def test_metrics_count_incidents_and_read_open_ones_at_scrape(client: Client) -> None:
    id = await burst(client)
    assert sample(client, "receiver_incidents_total", severity="SEV2") == 1
    await client.get("/metrics")
    assert sample(client, "receiver_open_incidents", severity="SEV2") == 1
    await change(client, f"/api/v1/incidents/{id}/resolve")
    await client.get("/metrics")
    assert sample(client, "receiver_open_incidents", severity="SEV2") == 0


async def test_incidents_survive_a_restart_and_keep_correlating(
    aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings(api={"token": TOKEN})

    async def start() -> Client:
        app = create_app(settings, registry=CollectorRegistry(), clock=clock, engine="inline")
        started: Client = await aiohttp_client(app)
        return started

    first = await start()
    id = await burst(first)
    await change(first, f"/api/v1/incidents/{id}/notes", {"text": "before the restart"}, 201)
    await first.close()
    second = await start()
    await post(second, alert("HighCpu", namespace="shop", service="cart"))
    [incident] = (await get_json(second, "/api/v1/incidents", headers=AUTH))["incidents"]
    assert incident["id"] == id and incident["alertCount"] == 3
    detail = await get_json(second, f"/api/v1/incidents/{id}", headers=AUTH)
    assert "before the restart" in [e["text"] for e in detail["timeline"]]
    await post(second, alert("Other", namespace="billing"))
    ids = [i["id"] for i in (await get_json(second, "/api/v1/incidents", headers=AUTH))["incidents"]]
    assert ids == ["INC-20261122-0002", id]  # numbering continues after the restart
    assert second.server.app[PROCESSOR].cursor == 3


class FailingRecordStore:
    """A real SQLite store whose incident changes fail, as a full disk would make them."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner

    async def record(self, changes: Any, *rest: Any, **named: Any) -> None:
        raise StoreError("database or disk is full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_change_the_store_cannot_write_gets_503_and_changes_nothing(
    make_client: MakeClient, tmp_path: Path
) -> None:
    inner = SQLiteStore(tmp_path / "r.db")
    await inner.open()
    try:
        client = await make_client(FailingRecordStore(inner), api={"token": TOKEN})
        id = await burst(client)
        response = await client.post(f"/api/v1/incidents/{id}/ack", headers=AUTH)
        assert response.status == 503 and response.headers["Retry-After"] == "1"
        assert "database or disk is full" in (await response.json())["error"]
        detail = await get_json(client, f"/api/v1/incidents/{id}", headers=AUTH)
        assert detail["status"] == "triggered"
        assert "acknowledged" not in [e["kind"] for e in detail["timeline"]]
        await post(client, alert("Later", namespace="shop"))  # the book was loaded again: still one incident
        assert [i["id"] for i in (await get_json(client, "/api/v1/incidents", headers=AUTH))["incidents"]] == [id]
    finally:
        await inner.close()


async def test_a_note_on_an_old_incident_leaves_its_alerts_with_the_newer_one(client: Client, clock: Clock) -> None:
    await post(client, alert("Flaky", namespace="shop"))
    [old] = (await get_json(client, "/api/v1/incidents", headers=AUTH))["incidents"]
    await change(client, f"/api/v1/incidents/{old['id']}/resolve")
    clock.advance(minutes=40)
    await client.server.app[PROCESSOR].tick(clock.now)  # past the reopen window: the book forgets it
    await post(client, alert("Flaky", starts="2026-11-22T10:05:00Z", namespace="shop"))  # a new episode
    newer = (await get_json(client, "/api/v1/incidents", headers=AUTH))["incidents"][0]
    assert newer["id"] != old["id"]
    await change(client, f"/api/v1/incidents/{old['id']}/notes", {"text": "postmortem: see the newer one"}, 201)
    await post(client, alert("Flaky", "resolved", starts="2026-11-22T10:05:00Z", namespace="shop"))
    detail = await get_json(client, f"/api/v1/incidents/{newer['id']}", headers=AUTH)
    assert [a["firing"] for a in detail["alerts"]] == [False]
    assert detail["timeline"][-1]["kind"] == "alert_resolved"
