"""Slack Socket Mode against the fake Slack: a connection opened with the app-level token, clicks acted on.

The app runs inline on a real store; its Slack channel has an app-level token and no signing secret,
so the clicks can only come over the websocket the app opens to the fake (``apps.connections.open``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from receiver.app import PROCESSOR, create_app
from receiver.config import Settings
from receiver.notify.channels.slack import SlackSettings
from receiver.notify.slack_actions import Disconnect, Envelope, Op, socket_message
from tests.conftest import Clock
from tests.e2e.harness import eventually
from tests.fakes.slack import APP_TOKEN, TOKEN, SlackFake, block_actions
from tests.payloads import body
from tests.test_http import Client
from tests.test_runs import crashloop

CHANNEL = "C0ALERTS01"
ALICE = "U0ALICE001"
API = {"Authorization": "Bearer api-token-0123456789"}
T = TypeVar("T")


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "hello", "num_connections": 1}', None),
        ('{"type": "disconnect", "reason": "refresh_requested"}', Disconnect("refresh_requested")),
        (
            '{"envelope_id": "e1", "type": "interactive", "payload": {"type": "block_actions"}}',
            Envelope("e1", "interactive", {"type": "block_actions"}),
        ),
        ('{"envelope_id": "e2", "type": "events_api"}', Envelope("e2", "events_api", {})),
        ('{"envelope_id": ""}', None),
        ("[1, 2]", None),
        ("not json", None),
    ],
)
def test_what_a_socket_mode_frame_is(frame: str, expected: Envelope | Disconnect | None) -> None:
    assert socket_message(frame) == expected


def test_the_app_token_is_an_app_level_token_and_a_secret() -> None:
    raw = {"type": "slack", "token": TOKEN, "channel": CHANNEL}
    settings = SlackSettings.model_validate(raw | {"app_token": APP_TOKEN})
    assert settings.interactive and APP_TOKEN not in repr(settings)
    with pytest.raises(ValueError, match="starts with xapp-"):
        SlackSettings.model_validate(raw | {"app_token": TOKEN})


@pytest.fixture
async def slack(clock: Clock) -> AsyncIterator[SlackFake]:
    async with SlackFake(clock=clock) as fake:
        fake.add_channel(CHANNEL, "alerts")
        yield fake


@pytest.fixture
async def client(aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock, slack: SlackFake) -> Client:
    channel = slack.channel_settings(CHANNEL) | {"app_token": APP_TOKEN}
    settings = make_settings(
        api={"token": "api-token-0123456789"},
        notify={"channels": {"ops": channel}, "routes": [{"channels": ["ops"]}]},
        oncall={"people": {"alice": {"timezone": "Europe/Berlin", "slack_user": ALICE}}},
    )
    app = create_app(settings, registry=CollectorRegistry(), clock=clock, engine="inline")
    found: Client = await aiohttp_client(app)
    return found


async def opened(client: Client) -> str:
    response = await client.post("/api/v1/alerts", data=body(crashloop()), headers={"Content-Type": "application/json"})
    assert response.status == 200
    await client.server.app[PROCESSOR].drain()
    [incident] = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"]
    return str(incident["id"])


async def status(client: Client, id: str) -> dict[str, Any]:
    found: dict[str, Any] = await (await client.get(f"/api/v1/incidents/{id}", headers=API)).json()
    return found


async def test_a_click_over_socket_mode_is_acknowledged_and_acts_as_the_clicking_person(
    client: Client, slack: SlackFake, clock: Clock
) -> None:
    id = await opened(client)
    await slack.wait_for_socket()
    [opening] = slack.received("/api/apps.connections.open")
    assert opening.headers["Authorization"] == f"Bearer {APP_TOKEN}"
    envelope = await slack.push_interaction(
        block_actions(
            ALICE, [(Op.ACKNOWLEDGE.value, id)], int(clock.now.timestamp()), response_url=slack.response_url()
        )
    )
    await slack.wait_for_ack(envelope)

    async def acknowledged() -> dict[str, Any] | None:
        found = await status(client, id)
        return found if found["status"] == "acknowledged" else None

    acked = await eventually(acknowledged, "the incident acknowledged")
    assert [e["actor"] for e in acked["timeline"] if e["kind"] == "acknowledged"] == ["alice"]
    signed_only = await client.post("/api/v1/slack/interactions", data=b"payload=%7B%7D")
    assert signed_only.status == 403  # no signing secret: the HTTP endpoint takes nothing


async def test_after_slack_closes_the_connection_another_is_opened_and_clicks_still_work(
    client: Client, slack: SlackFake, clock: Clock
) -> None:
    id = await opened(client)
    await slack.wait_for_socket()
    await slack.disconnect("refresh_requested")
    await slack.wait_for_socket(connections=2)
    assert len(slack.received("/api/apps.connections.open")) == 2
    envelope = await slack.push_interaction(
        block_actions("U0STRANGER", [(Op.RESOLVE.value, id)], 0, response_url=slack.response_url())
    )
    await slack.wait_for_ack(envelope)

    async def resolved() -> dict[str, Any] | None:
        found = await status(client, id)
        return found if found["status"] == "resolved" else None

    done = await eventually(resolved, "the incident resolved")
    assert [e["actor"] for e in done["timeline"] if e["kind"] == "resolved"] == ["slack:U0STRANGER"]


async def test_an_envelope_of_another_kind_is_acknowledged_and_a_refusal_is_told(
    client: Client, slack: SlackFake
) -> None:
    id = await opened(client)
    await slack.wait_for_socket()
    ignored = await slack.push_interaction(
        block_actions(ALICE, [(Op.ACKNOWLEDGE.value, id)], 0, kind="shortcut", response_url=slack.response_url())
    )
    await slack.wait_for_ack(ignored)
    answers = slack.response_url()
    refused = await slack.push_interaction(
        block_actions("U0STRANGER", [(Op.APPROVE.value, "1")], 0, response_url=answers)
    )
    await slack.wait_for_ack(refused)
    [told] = await eventually(lambda: _async(slack.received("/actions/")), "the refusal told at its response_url")
    assert "only people configured in oncall.people" in told.body["text"]
    assert (await status(client, id))["status"] == "triggered"


async def _async(value: T) -> T:
    return value


async def test_a_bot_token_cannot_open_a_connection(slack: SlackFake) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(slack.url + "/api/apps.connections.open", headers=headers) as response:
            assert await response.json() == {"ok": False, "error": "not_allowed_token_type"}
