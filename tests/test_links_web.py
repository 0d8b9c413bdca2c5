"""Signed links over HTTP: the confirmation page, the POST that acts as the link's actor, every refusal."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import ClientResponse, web

from receiver.engine.process import EngineUnavailable
from receiver.engine.processor import Processor
from receiver.incidents.book import UnknownIncident
from receiver.incidents.lifecycle import InvalidTransition
from receiver.oncall.links import Action, Claim, Keyring
from receiver.store import IncidentQuery, StoreError
from receiver.store.sqlite import SQLiteStore
from receiver.web.links import REASON, LinkPages
from tests import corpus
from tests.conftest import T0, Clock
from tests.delivering import deliver, processor
from tests.payloads import alert
from tests.test_http import Client, MakeClient, make_client
from tests.test_incidents_api import AUTH, TOKEN, get_json, post

__all__ = ["make_client"]  # the fixture, used by name
SECRET = "link-secret-0123456789-0123456789-abc"
OLD_SECRET = "old-link-secret-0123456789-0123456789"
KEYRING = Keyring((SECRET.encode(),))
HOSTILE = '<script>alert("x")</script>&amp;'


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client(
        api={"token": TOKEN}, oncall={"links": {"secret": SECRET, "previous_secrets": [OLD_SECRET]}}
    )


async def opened(client: Client, namespace: str = "shop") -> str:
    await post(client, alert("PodCrashLooping", namespace=namespace, severity="warning"))
    listed = await get_json(client, "/api/v1/incidents", headers=AUTH)
    return str(listed["incidents"][0]["id"])


def token(clock: Clock, id: str, action: Action = Action.ACKNOWLEDGE, actor: str = "alice", **ttl: float) -> str:
    return KEYRING.sign(Claim(id, action, actor, clock.now + timedelta(**(ttl or {"hours": 24}))))


async def incident(client: Client, id: str) -> Any:
    return await get_json(client, f"/api/v1/incidents/{id}", headers=AUTH)


async def html_page(response: ClientResponse, status: int) -> str:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "text/html" and response.charset == "utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "<script" not in text.lower()
    return text


async def test_the_page_shows_the_incident_escaped_and_a_button_and_changes_nothing(
    client: Client, clock: Clock
) -> None:
    id = await opened(client, namespace=HOSTILE)
    text = await html_page(await client.get(f"/links/{token(clock, id, actor='<b>alice</b>')}"), 200)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in text
    assert "&lt;b&gt;alice&lt;/b&gt;" in text and "<b>alice" not in text
    assert f"<dd>{id}</dd>" in text and "<dd>SEV3</dd>" in text and "<dd>triggered</dd>" in text
    assert re.search(r'<form method="post"><button type="submit">Acknowledge</button></form>', text)
    assert (await incident(client, id))["status"] == "triggered"


async def test_a_post_acknowledges_as_the_links_actor_then_a_repeat_says_it_is_done(
    client: Client, clock: Clock
) -> None:
    id = await opened(client)
    link = f"/links/{token(clock, id, actor='alice')}"
    clock.advance(seconds=90)
    text = await html_page(await client.post(link), 200)
    assert f"{id} is acknowledged by alice." in text
    detail = await incident(client, id)
    assert detail["status"] == "acknowledged" and detail["acknowledgedAt"] == clock.now.isoformat()
    assert detail["timeline"][-1] | {"at": None} == {
        "at": None,
        "kind": "acknowledged",
        "text": REASON,
        "actor": "alice",
        "fingerprint": None,
    }
    for again in (client.post(link), client.get(link)):
        text = await html_page(await again, 200)
        assert "is already acknowledged: nothing was changed" in text and "<form" not in text
    assert [e["kind"] for e in (await incident(client, id))["timeline"]].count("acknowledged") == 1


async def test_a_resolve_link_resolves_an_acknowledged_incident_and_an_ack_link_then_says_so(
    client: Client, clock: Clock
) -> None:
    id = await opened(client)
    await html_page(await client.post(f"/links/{token(clock, id, actor='slack:C123')}"), 200)
    text = await html_page(await client.post(f"/links/{token(clock, id, Action.RESOLVE, 'email')}"), 200)
    assert f"{id} is resolved by email." in text
    detail = await incident(client, id)
    assert detail["status"] == "resolved"
    assert [(e["kind"], e["actor"]) for e in detail["timeline"] if e["text"] == REASON] == [
        ("acknowledged", "slack:C123"),
        ("resolved", "email"),
    ]
    text = await html_page(await client.post(f"/links/{token(clock, id)}"), 200)
    assert "is already resolved" in text


async def test_a_link_signed_with_a_previous_secret_still_works(client: Client, clock: Clock) -> None:
    id = await opened(client)
    old = Keyring((OLD_SECRET.encode(),)).sign(Claim(id, Action.ACKNOWLEDGE, "bob", clock.now + timedelta(hours=1)))
    await html_page(await client.post(f"/links/{old}"), 200)
    assert (await incident(client, id))["acknowledgedAt"] is not None


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_expired_forged_and_malformed_links_are_refused_and_change_nothing(
    client: Client, clock: Clock, method: str
) -> None:
    id = await opened(client)
    expired = token(clock, id, seconds=60)
    clock.advance(seconds=60)
    valid = token(clock, id)
    forged = Keyring((b"someone-else-s-secret-0123456789ab",)).sign(
        Claim(id, Action.ACKNOWLEDGE, "mallory", clock.now + timedelta(hours=1))
    )
    altered = valid[:-1] + ("A" if valid[-1] != "A" else "B")
    cases = {
        expired: "this link expired at",
        forged: "signature is not valid",
        altered: "signature is not valid",
        "not-a-token": "not a link the receiver made",
    }
    for bad, why in cases.items():
        text = await html_page(await client.request(method, f"/links/{bad}"), 403)
        assert why in text and "Nothing was changed" in text and "<form" not in text
    assert (await incident(client, id))["status"] == "triggered"


async def test_a_genuine_link_to_an_unknown_incident_is_404(client: Client, clock: Clock) -> None:
    for method in ("GET", "POST"):
        text = await html_page(await client.request(method, f"/links/{token(clock, 'INC-20261122-0999')}"), 404)
        assert "There is no incident INC-20261122-0999" in text


async def test_other_methods_are_405_with_allow(client: Client, clock: Clock) -> None:
    id = await opened(client)
    for method in ("PUT", "DELETE", "PATCH"):
        response = await client.request(method, f"/links/{token(clock, id)}")
        assert response.status == 405
        assert {"GET", "POST"} <= set(response.headers["Allow"].split(","))
    assert (await incident(client, id))["status"] == "triggered"


async def test_without_a_secret_links_are_off_and_no_token_acts(make_client: MakeClient, clock: Clock) -> None:
    client = await make_client(api={"token": TOKEN})
    id = await opened(client)
    text = await html_page(await client.post(f"/links/{token(clock, id)}"), 404)
    assert "does not accept signed links" in text
    assert (await incident(client, id))["status"] == "triggered"


async def test_the_api_token_is_not_needed_and_not_enough(client: Client, clock: Clock) -> None:
    id = await opened(client)
    response = await client.post("/links/x", headers=AUTH)
    await html_page(response, 403)
    assert (await incident(client, id))["status"] == "triggered"


class Racing:
    """Commands that fail as the engine can: another change got there first, or the engine is away."""

    def __init__(self, store: SQLiteStore, error: Exception) -> None:
        self.store, self.error = store, error
        self.asked: list[tuple[str, str, str]] = []

    async def acknowledge(self, id: str, actor: str, reason: str) -> None:
        self.asked.append((id, actor, reason))
        raise self.error

    resolve = mitigate = note = update = acknowledge


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, Processor, str]]:
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    proc = processor(store)
    await deliver(store, proc, T0, [corpus.alert("KubePodCrashLooping", namespace="shop", pod="web-1")])
    [found] = await store.incidents(IncidentQuery())
    yield store, proc, found.id
    await store.close()


async def racing_client(aiohttp_client: Any, store: SQLiteStore, commands: Racing, clock: Clock) -> Client:
    app = web.Application()
    LinkPages(store, commands, KEYRING, clock).add_routes(app.router)
    return cast(Client, await aiohttp_client(app))


async def test_a_change_made_meanwhile_is_told_as_it_is_now(
    aiohttp_client: Any, seeded: tuple[SQLiteStore, Processor, str], clock: Clock
) -> None:
    store, proc, id = seeded
    commands = Racing(store, InvalidTransition("an incident that is mitigated cannot become acknowledged"))
    client = await racing_client(aiohttp_client, store, commands, clock)
    link = f"/links/{token(clock, id)}"
    await proc.mitigate(id, "bob", "rolled back")  # after the link was made, before it was pressed
    text = await html_page(await client.post(link), 200)  # acknowledging has nothing left to do
    assert "is already mitigated" in text and commands.asked == []
    await proc.resolve(id, "bob", "")
    text = await html_page(await client.post(f"/links/{token(clock, id, Action.RESOLVE)}"), 200)
    assert "is already resolved" in text and commands.asked == []


async def test_an_impossible_transition_found_only_by_the_engine_is_409(
    aiohttp_client: Any, seeded: tuple[SQLiteStore, Processor, str], clock: Clock
) -> None:
    store, _, id = seeded
    commands = Racing(store, InvalidTransition("no"))
    client = await racing_client(aiohttp_client, store, commands, clock)
    text = await html_page(await client.post(f"/links/{token(clock, id)}"), 409)
    assert "is triggered: it cannot be acknowledged" in text
    assert commands.asked == [(id, "alice", REASON)]


@pytest.mark.parametrize("error", [EngineUnavailable("the engine did not answer in time"), StoreError("locked")])
async def test_an_engine_or_store_that_cannot_take_the_change_is_503(
    aiohttp_client: Any, seeded: tuple[SQLiteStore, Processor, str], clock: Clock, error: Exception
) -> None:
    store, _, id = seeded
    client = await racing_client(aiohttp_client, store, Racing(store, error), clock)
    response = await client.post(f"/links/{token(clock, id)}")
    text = await html_page(response, 503)
    assert response.headers["Retry-After"] == "1" and "Nothing was changed" in text
    found = await store.incident(id, 0)
    assert found is not None and found[0].status.value == "triggered"


async def test_an_incident_gone_when_the_engine_looks_is_404(
    aiohttp_client: Any, seeded: tuple[SQLiteStore, Processor, str], clock: Clock
) -> None:
    store, _, id = seeded
    client = await racing_client(aiohttp_client, store, Racing(store, UnknownIncident(id)), clock)
    await html_page(await client.post(f"/links/{token(clock, id)}"), 404)
