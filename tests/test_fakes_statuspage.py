"""The fake Statuspage REST API v1 behaves as Statuspage documents (see tests/fakes/statuspage.py for the URLs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import Clock
from tests.fakes.server import Fault
from tests.fakes.statuspage import StatuspageFake

KEY = "0123abcd-4567-89ef-0123-456789abcdef"
PAGE = "kctbh9vrtdwd"
API, WEB = "cmp0000000a1", "cmp0000000b2"


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[StatuspageFake]:
    async with StatuspageFake(clock=clock, api_keys=[KEY], page_id=PAGE, components={API: "API", WEB: "Web"}) as server:
        yield server


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, key: str | None = KEY
) -> tuple[int, Any]:
    headers = {} if key is None else {"Authorization": f"OAuth {key}"}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


def incidents(fake: StatuspageFake, suffix: str = "") -> str:
    return f"{fake.api_url}/pages/{PAGE}/incidents{suffix}"


def components(fake: StatuspageFake, suffix: str = "") -> str:
    return f"{fake.api_url}/pages/{PAGE}/components{suffix}"


async def test_create_an_incident_sets_its_components_statuses(
    fake: StatuspageFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    status, incident = await call(
        http,
        "POST",
        incidents(fake),
        {
            "incident": {
                "name": "Checkout errors",
                "status": "investigating",
                "body": "We are investigating elevated errors at checkout.",
                "component_ids": [API],
                "components": {API: "partial_outage"},
                "metadata": {"receiver": {"incident": "inc-1"}},
            }
        },
    )
    assert status == 201
    assert incident["name"] == "Checkout errors" and incident["status"] == "investigating"
    assert incident["impact"] == "major"  # partial_outage, no override
    assert incident["created_at"] == clock.now.isoformat() and incident["resolved_at"] is None
    assert [c["id"] for c in incident["components"]] == [API]
    [update] = incident["incident_updates"]
    assert update["body"].startswith("We are investigating") and update["status"] == "investigating"
    assert update["affected_components"] == [
        {"code": API, "name": "API", "old_status": "operational", "new_status": "partial_outage"}
    ]
    assert fake.components[API]["status"] == "partial_outage" and fake.components[WEB]["status"] == "operational"
    assert fake.incident_named("Checkout errors") == fake.incidents[incident["id"]]
    [received] = fake.requests
    assert received.headers["Authorization"] == f"OAuth {KEY}" and received.at == clock.now


async def test_update_then_resolve_an_incident(fake: StatuspageFake, http: aiohttp.ClientSession, clock: Clock) -> None:
    _, created = await call(
        http, "POST", incidents(fake), {"incident": {"name": "Slow web", "impact_override": "minor"}}
    )
    url = incidents(fake, f"/{created['id']}")
    clock.advance(minutes=5)
    status, monitoring = await call(
        http,
        "PATCH",
        url,
        {
            "incident": {
                "status": "monitoring",
                "body": "A fix is deployed.",
                "components": {WEB: "degraded_performance"},
            }
        },
    )
    assert status == 200 and monitoring["status"] == "monitoring" and monitoring["impact"] == "minor"
    assert monitoring["monitoring_at"] == clock.now.isoformat()
    clock.advance(minutes=10)
    status, resolved = await call(
        http,
        "PATCH",
        url,
        {"incident": {"status": "resolved", "body": "Resolved.", "components": {WEB: "operational"}}},
    )
    assert status == 200 and resolved["resolved_at"] == clock.now.isoformat()
    assert [u["status"] for u in resolved["incident_updates"]] == ["resolved", "monitoring", "investigating"]
    assert fake.components[WEB]["status"] == "operational"
    status, got = await call(http, "GET", url)
    assert status == 200 and got == resolved


async def test_list_incidents_newest_first_unresolved_and_paged(
    fake: StatuspageFake, http: aiohttp.ClientSession
) -> None:
    ids = []
    for name in ("one", "two", "three"):
        _, created = await call(http, "POST", incidents(fake), {"incident": {"name": name}})
        ids.append(created["id"])
    await call(http, "PATCH", incidents(fake, f"/{ids[1]}"), {"incident": {"status": "resolved"}})
    status, listed = await call(http, "GET", incidents(fake))
    assert status == 200 and [i["name"] for i in listed] == ["three", "two", "one"]
    _, unresolved = await call(http, "GET", incidents(fake, "/unresolved"))
    assert [i["name"] for i in unresolved] == ["three", "one"]
    _, second_page = await call(http, "GET", incidents(fake) + "?limit=2&page=2")
    assert [i["name"] for i in second_page] == ["one"]
    _, searched = await call(http, "GET", incidents(fake) + "?q=TWO")
    assert [i["id"] for i in searched] == [ids[1]]


async def test_components_read_and_patch(fake: StatuspageFake, http: aiohttp.ClientSession) -> None:
    status, listed = await call(http, "GET", components(fake))
    assert status == 200 and [(c["id"], c["status"]) for c in listed] == [(API, "operational"), (WEB, "operational")]
    status, patched = await call(http, "PATCH", components(fake, f"/{API}"), {"component": {"status": "major_outage"}})
    assert status == 200 and patched["status"] == "major_outage"
    status, got = await call(http, "GET", components(fake, f"/{API}"))
    assert status == 200 and got["status"] == "major_outage"
    status, body = await call(http, "PATCH", components(fake, f"/{API}"), {"component": {"status": "down"}})
    assert status == 422 and "operational, degraded_performance" in body["message"]
    assert fake.components[API]["status"] == "major_outage"


async def test_the_page_reads_with_a_key_and_changes_nothing(fake: StatuspageFake, http: aiohttp.ClientSession) -> None:
    status, page = await call(http, "GET", f"{fake.api_url}/pages/{PAGE}")
    assert status == 200 and page["id"] == PAGE and page["name"]
    assert (await call(http, "GET", f"{fake.api_url}/pages/{PAGE}", key="not-a-key"))[0] == 401
    assert (await call(http, "GET", f"{fake.api_url}/pages/nosuchpage000"))[0] == 404
    assert fake.incidents == {}


@pytest.mark.parametrize("key", [None, "not-a-key"])
async def test_a_missing_or_bad_key_is_401(fake: StatuspageFake, http: aiohttp.ClientSession, key: str | None) -> None:
    status, body = await call(http, "POST", incidents(fake), {"incident": {"name": "x"}}, key=key)
    assert (status, body) == (401, {"message": "Could not authenticate"})
    assert fake.incidents == {}


async def test_the_api_key_query_parameter_authenticates(fake: StatuspageFake, http: aiohttp.ClientSession) -> None:
    status, _ = await call(http, "GET", components(fake) + f"?api_key={KEY}", key=None)
    assert status == 200


@pytest.mark.parametrize(
    "url",
    [
        "/pages/nosuchpage000/incidents",
        f"/pages/{PAGE}/incidents/i99999999999",
        f"/pages/{PAGE}/components/nosuchcompo1",
        f"/pages/{PAGE}/nothing-here",
    ],
)
async def test_unknown_resources_are_404(fake: StatuspageFake, http: aiohttp.ClientSession, url: str) -> None:
    status, body = await call(http, "GET", fake.api_url + url)
    assert status == 404 and body["message"]


@pytest.mark.parametrize(
    ("incident", "problem"),
    [
        ({"status": "investigating"}, "name can't be blank"),
        ({"name": "n" * 256}, "name is too long"),
        ({"name": "x", "status": "scheduled"}, "status must be one of investigating, identified, monitoring, resolved"),
        ({"name": "x", "impact_override": "huge"}, "impact_override must be one of none, minor, major, critical"),
        ({"name": "x", "body": "b" * 25001}, "body must be text of at most 25000 characters"),
        ({"name": "x", "component_ids": ["nosuchcompo1"]}, "component nosuchcompo1 does not exist"),
        ({"name": "x", "components": {API: "on fire"}}, f"component {API} status must be one of"),
        ({"name": "x", "metadata": {"receiver": "inc-1"}}, "metadata must be an object whose top-level values"),
    ],
)
async def test_invalid_incidents_are_422_and_change_nothing(
    fake: StatuspageFake, http: aiohttp.ClientSession, incident: dict[str, Any], problem: str
) -> None:
    status, body = await call(http, "POST", incidents(fake), {"incident": incident})
    assert status == 422 and problem in body["message"]
    assert fake.incidents == {} and fake.components[API]["status"] == "operational"


async def test_an_update_failing_validation_changes_nothing(fake: StatuspageFake, http: aiohttp.ClientSession) -> None:
    _, created = await call(http, "POST", incidents(fake), {"incident": {"name": "x"}})
    url = incidents(fake, f"/{created['id']}")
    status, _ = await call(http, "PATCH", url, {"incident": {"status": "fixed", "components": {API: "major_outage"}}})
    assert status == 422
    assert (
        fake.incidents[created["id"]]["status"] == "investigating" and fake.components[API]["status"] == "operational"
    )


async def test_a_body_without_its_object_is_400(fake: StatuspageFake, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "POST", incidents(fake), {"name": "not wrapped"})
    assert status == 400 and "'incident'" in body["message"]


async def test_rate_limit_is_one_request_a_second_over_a_rolling_minute_answered_420(
    fake: StatuspageFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    for _ in range(60):
        assert (await call(http, "GET", components(fake)))[0] == 200
    status, body = await call(http, "GET", components(fake))
    assert status == 420 and "Rate limit" in body["message"]
    clock.advance(seconds=59.999)
    assert (await call(http, "GET", components(fake)))[0] == 420
    clock.advance(seconds=0.001)  # the first 60 requests leave the window together
    assert (await call(http, "GET", components(fake)))[0] == 200


async def test_the_rate_limit_is_per_key_and_can_answer_429(clock: Clock, http: aiohttp.ClientSession) -> None:
    async with StatuspageFake(
        clock=clock, api_keys=[KEY, "other"], page_id=PAGE, rate_limit=1, rate_status=429
    ) as fake:
        assert (await call(http, "GET", components(fake)))[0] == 200
        assert (await call(http, "GET", components(fake)))[0] == 429
        assert (await call(http, "GET", components(fake), key="other"))[0] == 200
        clock.advance(seconds=60)
        assert (await call(http, "GET", components(fake)))[0] == 200


async def test_scripted_faults_come_first_and_change_nothing(fake: StatuspageFake, http: aiohttp.ClientSession) -> None:
    fake.faults.add(Fault.status_only(503))
    fake.faults.add(Fault.json(420, {"message": "slow down"}, retry_after=2))
    assert (await call(http, "POST", incidents(fake), {"incident": {"name": "x"}}))[0] == 503
    assert (await call(http, "POST", incidents(fake), {"incident": {"name": "x"}})) == (420, {"message": "slow down"})
    assert fake.incidents == {}
    assert (await call(http, "POST", incidents(fake), {"incident": {"name": "x"}}))[0] == 201
    assert len(fake.requests) == 3
