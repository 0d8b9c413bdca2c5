"""The Teams Workflows fake behaves as Microsoft's documentation (cited in tests/fakes/teams.py) says."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import Clock
from tests.fakes.teams import ADAPTIVE, MAX_BYTES, TeamsFake


def card(*texts: str) -> dict[str, Any]:
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [{"type": "TextBlock", "text": t, "wrap": True} for t in texts],
    }


def message(content: Any, content_type: str = ADAPTIVE) -> dict[str, Any]:
    return {"type": "message", "attachments": [{"contentType": content_type, "contentUrl": None, "content": content}]}


@pytest.fixture
async def teams(clock: Clock) -> AsyncIterator[TeamsFake]:
    async with TeamsFake(clock=clock) as fake:
        yield fake


async def send(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, dict[str, str], Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as response:
        text = await response.text()
        return response.status, dict(response.headers), json.loads(text) if text else None


async def test_a_card_is_accepted_with_202_and_posted_to_the_flows_channel(
    teams: TeamsFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    url = teams.url + teams.add_flow("Incidents")

    status, _, body = await send(http, url, message(card("SEV2 disk full on node-3")))

    assert (status, body) == (202, None)
    assert teams.posted("Incidents") == [card("SEV2 disk full on node-3")]
    assert teams.posted("Elsewhere") == []
    (request,) = teams.requests
    assert request.at == clock.now and request.body["type"] == "message" and "sig" in request.query


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        ({"type": "message"}, "attachments"),
        ({"attachments": [{"contentType": ADAPTIVE, "content": card("x")}]}, '"type": "message"'),
        (message(card("x"), content_type="application/vnd.microsoft.card.hero"), "contentType"),
        (message({"type": "AdaptiveCard", "body": []}), "version"),
        (message({"type": "MessageCard", "version": "1.4"}), "AdaptiveCard"),
        (message({**card("x"), "body": [{"text": "no type"}]}), "body"),
    ],
)
async def test_a_malformed_card_is_400_naming_what_is_wrong(
    teams: TeamsFake, http: aiohttp.ClientSession, body: Any, words: str
) -> None:
    status, _, answer = await send(http, teams.url + teams.add_flow(), body)

    assert status == 400
    assert words in answer["error"]["message"]
    assert teams.runs == []


async def test_the_28_kb_limit(teams: TeamsFake, http: aiohttp.ClientSession, clock: Clock) -> None:
    url = teams.url + teams.add_flow()
    empty = len(json.dumps(message(card(""))).encode())
    at_limit = message(card("a" * (MAX_BYTES - empty)))
    over = message(card("a" * (MAX_BYTES - empty + 1)))

    assert (await send(http, url, at_limit))[0] == 202
    status, _, answer = await send(http, url, over)

    assert status == 413 and answer["error"]["code"] == "RequestEntityTooLarge"
    assert len(teams.posted()) == 1


async def test_more_than_four_requests_in_a_second_are_throttled(
    teams: TeamsFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    url = teams.url + teams.add_flow()
    for i in range(4):
        assert (await send(http, url, message(card(f"{i}"))))[0] == 202
    clock.advance(seconds=0.5)

    status, headers, _ = await send(http, url, message(card("fifth")))

    assert status == 429 and headers["Retry-After"] == "1"
    clock.advance(seconds=0.5)
    assert (await send(http, url, message(card("a second after the first"))))[0] == 202
    assert len(teams.posted()) == 5


async def test_the_signature_and_the_flow_are_checked(teams: TeamsFake, http: aiohttp.ClientSession) -> None:
    path = teams.add_flow()
    base = teams.url + path.split("?")[0]

    unsigned = await send(http, base + "?api-version=2016-06-01", message(card("x")))
    forged = await send(http, base + "?api-version=2016-06-01&sig=forged", message(card("x")))
    unknown = await send(http, teams.url + path.replace(path.split("/")[2], "0" * 32), message(card("x")))

    assert (unsigned[0], unsigned[2]["error"]["code"]) == (401, "DirectApiAuthorizationRequired")
    assert (forged[0], forged[2]["error"]["code"]) == (401, "DirectApiInvalidAuthorizationSignature")
    assert unknown[0] == 404
    assert teams.runs == []


async def test_run_validation_models_the_real_asynchrony(clock: Clock, http: aiohttp.ClientSession) -> None:
    async with TeamsFake(clock=clock, validate="run") as teams:
        url = teams.url + teams.add_flow()
        status, _, _ = await send(http, url, message({"type": "AdaptiveCard"}))

        assert status == 202
        (run,) = teams.runs
        assert not run.posted and run.error is not None and "version" in run.error
        assert teams.posted() == []


async def test_scripted_throttling_and_server_errors(teams: TeamsFake, http: aiohttp.ClientSession) -> None:
    url = teams.url + teams.add_flow()
    teams.throttle(times=2, retry_after=7)
    teams.server_error(status=502)

    answers = [await send(http, url, message(card("x"))) for _ in range(4)]

    assert [(s, h.get("Retry-After")) for s, h, _ in answers] == [(429, "7"), (429, "7"), (502, None), (202, None)]
    assert len(teams.posted()) == 1
    assert [r.faulted for r in teams.requests] == [True, True, True, False]
