"""PagerDuty v3 webhooks: signatures, events, and an incident moved from PagerDuty with nothing sent back.

The requests are built by ``tests.fakes.pagerduty.signed_webhook`` (its own HMAC, as PagerDuty documents
it); the app runs inline on a real store, its PagerDuty channel sending to the fake Events API, so a test
sees what PagerDuty would have been told.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from receiver.app import PROCESSOR, create_app
from receiver.config import Settings
from receiver.incidents.lifecycle import Signal
from receiver.notify.channel import Io
from receiver.notify.channels.pagerduty import PagerDutySettings, build
from receiver.notify.http import Http
from receiver.notify.model import Sent, Skipped
from receiver.notify.pagerduty_webhooks import Change, Ignored, event, forged
from tests import channel_support as support
from tests.conftest import Clock
from tests.e2e.harness import eventually
from tests.fakes.pagerduty import PagerDutyFake, signed_webhook, user_agent, webhook_event
from tests.payloads import body
from tests.test_http import Client
from tests.test_openapi import _assert_documented, recording
from tests.test_runs import crashloop

SECRET = "pd-webhook-secret-0123456789abcdef"
ROTATED = "pd-webhook-secret-new-fedcba987654"
ROUTING_KEY = "R0123456789abcdef0123456789abcde"
API = {"Authorization": "Bearer api-token-0123456789"}
PEOPLE = {"PBOB001": "bob"}
T = TypeVar("T")


# ---- signatures ----------------------------------------------------------------------------------


SIGNED = b'{"event": {"event_type": "incident.acknowledged"}}'


def _signature(*secrets: str, body: bytes = SIGNED) -> str:
    return ",".join("v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)


SIGNATURES: dict[str, tuple[str | None, bytes, str | None]] = {
    "one signature": (_signature(SECRET), SIGNED, None),
    "several while a secret rotates: one matches": (_signature(ROTATED, SECRET), SIGNED, None),
    "spaces after the commas": (_signature(ROTATED, SECRET).replace(",", ", "), SIGNED, None),
    "wrong secret": (_signature(ROTATED), SIGNED, "has no signature of the body"),
    "no header": (None, SIGNED, "missing X-PagerDuty-Signature"),
    "empty header": ("", SIGNED, "missing X-PagerDuty-Signature"),
    "another version": (_signature(SECRET).replace("v1=", "v2="), SIGNED, "has no signature"),
    "tampered body": (_signature(SECRET), SIGNED.replace(b"acknowledged", b"resolved"), "has no signature"),
    "not hex": ("v1=zzzz", SIGNED, "has no signature"),
}


@pytest.mark.parametrize(("header", "body", "problem"), SIGNATURES.values(), ids=SIGNATURES.keys())
def test_signatures(header: str | None, body: bytes, problem: str | None) -> None:
    found = forged([SECRET], header, body)
    assert found is None if problem is None else (found is not None and problem in found), found


def test_any_configured_secret_signs() -> None:
    assert forged([ROTATED, SECRET], _signature(SECRET), SIGNED) is None
    refused = forged([ROTATED], _signature(SECRET), SIGNED)
    assert refused is not None and SECRET not in refused and ROTATED not in refused


@given(st.binary(min_size=1, max_size=300), st.integers(0, 299), st.integers(1, 255))
def test_any_change_to_the_body_fails_the_signature(original: bytes, at: int, xor: int) -> None:
    at %= len(original)
    changed = original[:at] + bytes([original[at] ^ xor]) + original[at + 1 :]
    header = _signature(SECRET, body=original)
    assert forged([SECRET], header, original) is None
    assert forged([SECRET], header, changed) is not None
    assert forged([SECRET], header, original + b" ") is not None


# ---- events --------------------------------------------------------------------------------------


def _body(document: dict[str, Any]) -> bytes:
    return signed_webhook([SECRET], document)[0]


EVENTS: dict[str, tuple[dict[str, Any], Change | Ignored]] = {
    "acknowledged by a configured person": (
        webhook_event("incident.acknowledged", support.INCIDENT, agent=user_agent("PBOB001", "Bob Builder")),
        Change("acknowledge", support.INCIDENT, "pagerduty: bob", "acknowledged in PagerDuty"),
    ),
    "resolved by someone else: their name in PagerDuty": (
        webhook_event("incident.resolved", support.INCIDENT, agent=user_agent("PCAROL1", "Carol\nSmith")),
        Change("resolve", support.INCIDENT, "pagerduty: Carol Smith", "resolved in PagerDuty"),
    ),
    "resolved with no agent (PagerDuty's own timeout)": (
        webhook_event("incident.resolved", support.INCIDENT),
        Change("resolve", support.INCIDENT, "pagerduty: PagerDuty", "resolved in PagerDuty"),
    ),
    "another event type": (
        webhook_event("incident.annotated", support.INCIDENT),
        Ignored("incident.annotated: not an acknowledgement or a resolution"),
    ),
    "an incident that is not ours": (
        webhook_event("incident.acknowledged", "d3640fbd41094207a1c11e58e46b1662"),
        Ignored("incident_key 'd3640fbd41094207a1c11e58e46b1662' is not one of our incidents' ids"),
    ),
    "no incident key": (
        {"event": {"event_type": "incident.acknowledged", "data": {}}},
        Ignored("incident_key 'None' is not one of our incidents' ids"),
    ),
}


@pytest.mark.parametrize(("document", "expected"), EVENTS.values(), ids=EVENTS.keys())
def test_what_an_event_asks(document: dict[str, Any], expected: Change | Ignored) -> None:
    assert event(_body(document), PEOPLE) == expected


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b"{}", b'{"event": {}}', b'{"event": {"event_type": 1}}', b"\xff", b'{"event": ' + b"[" * 100_000],
)
def test_a_body_that_is_not_a_webhook_says_so(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"event\.event_type"):
        event(raw, PEOPLE)


def test_a_long_agent_name_is_cut() -> None:
    found = event(_body(webhook_event("incident.resolved", support.INCIDENT, agent=user_agent("P1", "x" * 5000))), {})
    assert isinstance(found, Change) and len(found.actor) <= 200


# ---- no loop: the channel sends nothing back for a change PagerDuty made ---------------------------


@pytest.fixture
async def pagerduty(clock: Clock) -> AsyncIterator[PagerDutyFake]:
    async with PagerDutyFake(clock=clock, routing_keys=[ROUTING_KEY]) as fake:
        yield fake


@pytest.mark.parametrize("signal", [Signal.ACKNOWLEDGED, Signal.RESOLVED])
async def test_the_channel_sends_nothing_back_for_a_change_pagerduty_made(
    pagerduty: PagerDutyFake, clock: Clock, signal: Signal
) -> None:
    channel = build("pd", PagerDutySettings.model_validate(pagerduty.channel_settings(ROUTING_KEY)))
    async with Http(timeout=5) as http:
        io = Io(http, clock)
        assert isinstance(await channel.send(support.delivery(channel="pd"), support.Script(), io), Sent)
        from_pd = await channel.send(
            replace(support.delivery(signal, channel="pd"), actor="pagerduty: bob"), support.Script(), io
        )
        assert from_pd == Skipped("came from PagerDuty")
        assert [e["event_action"] for e in pagerduty.alerts[0].events] == ["trigger"]
        ours = await channel.send(replace(support.delivery(signal, channel="pd"), actor="alice"), support.Script(), io)
    assert isinstance(ours, Sent)
    assert [e["event_action"] for e in pagerduty.alerts[0].events][-1] == ACTIONS[signal]


ACTIONS = {Signal.ACKNOWLEDGED: "acknowledge", Signal.RESOLVED: "resolve"}


# ---- webhooks on a real app ----------------------------------------------------------------------


@pytest.fixture
def start(aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock, pagerduty: PagerDutyFake) -> Any:
    """The app inline, its PagerDuty channel sending to the fake and taking webhooks signed with either secret."""

    async def make() -> tuple[Client, list[Any]]:
        channel = pagerduty.channel_settings(ROUTING_KEY) | {"webhook_secret": SECRET}
        second = pagerduty.channel_settings(ROUTING_KEY) | {"webhook_secret": ROTATED}
        settings = make_settings(
            api={"token": "api-token-0123456789"},
            notify={"channels": {"pd": channel, "pd-new": second}, "routes": [{"channels": ["pd"]}]},
            oncall={"people": {"bob": {"timezone": "Europe/Berlin", "pagerduty_user": "PBOB001"}}},
        )
        app = create_app(settings, registry=CollectorRegistry(), clock=clock, engine="inline")
        answers = recording(app)
        return await aiohttp_client(app), answers

    return make


async def opened(client: Client, pagerduty: PagerDutyFake) -> str:
    response = await client.post("/api/v1/alerts", data=body(crashloop()), headers={"Content-Type": "application/json"})
    assert response.status == 200
    await client.server.app[PROCESSOR].drain()
    [incident] = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"]
    id = str(incident["id"])
    await eventually(lambda: _async(pagerduty.pages(id) == 1), "PagerDuty paged")
    return id


async def _async(value: T) -> T:
    return value


async def hook(client: Client, document: dict[str, Any], status: int = 200, *, secrets: list[str] | None = None) -> Any:
    data, headers = signed_webhook(secrets if secrets is not None else [SECRET], document)
    response = await client.post("/api/v1/pagerduty/webhooks", data=data, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


async def incident(client: Client, id: str) -> dict[str, Any]:
    found: dict[str, Any] = await (await client.get(f"/api/v1/incidents/{id}", headers=API)).json()
    return found


async def notification_states(client: Client, id: str) -> dict[str, str]:
    listed = await (await client.get(f"/api/v1/notifications?incident={id}", headers=API)).json()
    return {n["event"]: n["state"] for n in listed["notifications"]}


async def test_acknowledged_in_pagerduty_moves_ours_and_sends_nothing_back(
    start: Any, pagerduty: PagerDutyFake, clock: Clock
) -> None:
    client, answers = await start()
    id = await opened(client, pagerduty)
    clock.advance(seconds=5)  # past the channel's pace: its next event may go at once
    bob = user_agent("PBOB001", "Bob Builder")
    answered = await hook(client, webhook_event("incident.acknowledged", id, agent=bob), secrets=[ROTATED, "old"])
    assert answered == {"result": "applied", "reason": "acknowledged in PagerDuty", "incident": id}
    acked = await incident(client, id)
    assert acked["status"] == "acknowledged" and acked["timeline"][-1]["actor"] == "pagerduty: bob"

    async def told() -> dict[str, str] | None:
        states = await notification_states(client, id)
        return states if states.get("acknowledged") not in (None, "pending", "sending") else None

    states = await eventually(told, "the acknowledgement's notification to be final")
    assert states["acknowledged"] == "skipped"
    alert = pagerduty.alert(id)
    assert alert is not None and alert.status == "triggered"
    assert [e["event_action"] for e in alert.events] == ["trigger"]  # no acknowledge sent back: no loop
    again = await hook(client, webhook_event("incident.acknowledged", id, agent=bob))
    assert again == {"result": "unchanged", "reason": "an incident that is acknowledged cannot become acknowledged"}
    _assert_documented(answers)


async def test_ours_resolved_is_sent_to_pagerduty_and_its_echo_changes_nothing(
    start: Any, pagerduty: PagerDutyFake, clock: Clock
) -> None:
    client, answers = await start()
    id = await opened(client, pagerduty)
    clock.advance(seconds=5)
    response = await client.post(f"/api/v1/incidents/{id}/resolve", json={"actor": "alice"}, headers=API)
    assert response.status == 200

    async def resolved_there() -> bool:
        alert = pagerduty.alert(id)
        return alert is not None and alert.status == "resolved"

    await eventually(resolved_there, "PagerDuty told of the resolution")
    before = await incident(client, id)
    integration = {"id": "PINTEG1", "type": "inbound_integration_reference", "summary": "receiver"}
    echo = await hook(client, webhook_event("incident.resolved", id, agent=integration))
    assert echo == {"result": "unchanged", "reason": "an incident that is resolved cannot become resolved"}
    after = await incident(client, id)
    assert after["status"] == "resolved" and after["timeline"] == before["timeline"]
    assert [e["actor"] for e in after["timeline"] if e["kind"] == "resolved"] == ["alice"]
    _assert_documented(answers)


@pytest.mark.parametrize(
    ("secrets", "headers", "words"),
    [
        (["not-the-secret"], None, "has no signature of the body"),
        ([], None, "missing X-PagerDuty-Signature"),
        ([SECRET], {"X-PagerDuty-Signature": "v1=" + "0" * 64}, "has no signature"),
    ],
    ids=["forged", "unsigned", "signature of another body"],
)
async def test_a_forged_webhook_is_refused_and_changes_nothing(
    start: Any, pagerduty: PagerDutyFake, secrets: list[str], headers: dict[str, str] | None, words: str
) -> None:
    client, answers = await start()
    id = await opened(client, pagerduty)
    data, signed = signed_webhook(secrets, webhook_event("incident.resolved", id))
    response = await client.post("/api/v1/pagerduty/webhooks", data=data, headers=signed | (headers or {}))
    assert response.status == 401 and words in (await response.json())["error"]
    assert (await incident(client, id))["status"] == "triggered"
    _assert_documented(answers)


async def test_what_is_not_ours_is_answered_200_and_ignored(start: Any, pagerduty: PagerDutyFake) -> None:
    client, answers = await start()
    id = await opened(client, pagerduty)
    other = await hook(client, webhook_event("incident.priority_updated", id))
    assert other == {"result": "ignored", "reason": "incident.priority_updated: not an acknowledgement or a resolution"}
    unknown = await hook(client, webhook_event("incident.resolved", "INC-20200101-0001"))
    assert unknown == {"result": "ignored", "reason": "no incident INC-20200101-0001"}
    foreign = await hook(client, webhook_event("incident.resolved", "Q0SOMEKEY"))
    assert foreign["result"] == "ignored"
    data, headers = signed_webhook([SECRET], {"event": []})
    response = await client.post("/api/v1/pagerduty/webhooks", data=data, headers=headers)
    assert response.status == 400 and "event.event_type" in (await response.json())["error"]
    assert (await incident(client, id))["status"] == "triggered"
    _assert_documented(answers)


async def test_without_a_webhook_secret_webhooks_are_not_taken(
    aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock
) -> None:
    app = create_app(make_settings(), registry=CollectorRegistry(), clock=clock, engine="inline")
    client = await aiohttp_client(app)
    data, headers = signed_webhook([SECRET], webhook_event("incident.resolved", support.INCIDENT))
    response = await client.post("/api/v1/pagerduty/webhooks", data=data, headers=headers)
    assert response.status == 403 and "set webhook_secret" in (await response.json())["error"]


def test_the_webhook_secret_is_a_secret_and_not_blank() -> None:
    settings = PagerDutySettings.model_validate(
        {"type": "pagerduty", "routing_key": ROUTING_KEY, "webhook_secret": SECRET}
    )
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    with pytest.raises(ValueError, match="empty webhook secret"):
        PagerDutySettings.model_validate({"type": "pagerduty", "routing_key": ROUTING_KEY, "webhook_secret": "  "})
