"""What every channel owes the sender, checked on each of them: a result for every signal, never an
exception; whether a request whose answer was lost may have arrived (``maybe_sent``); which route
destinations it takes (``destination_problem``). The channels' own tests check the rest against their fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest

from receiver.incidents.lifecycle import Signal
from receiver.notify.channel import Channel, Io
from receiver.notify.channels import email, pagerduty, slack, statuspage, teams, webhook
from receiver.notify.http import Http, Unreachable
from receiver.notify.model import Failed, Reason, Sent, Skipped
from tests.channel_support import Script, closed_url, delivery
from tests.conftest import Clock

Build = Callable[[str], Channel]
"""A channel whose provider is at a base URL."""


def mail_settings(url: str) -> email.EmailSettings:
    """A relay at ``url``'s port on this machine, spoken to in plaintext."""
    raw = {"host": "127.0.0.1", "port": urlsplit(url).port or 25, "security": "none", "timeout": 5}
    return email.EmailSettings.model_validate(
        {"type": "email", "sender": "r@example.org", "to": ["oncall@example.org"], **raw}
    )


CHANNELS: dict[str, Build] = {
    "pagerduty": lambda url: pagerduty.build(
        "ops", pagerduty.PagerDutySettings(type="pagerduty", routing_key="R" * 32, api_url=url)
    ),
    "teams": lambda url: teams.build("ops", teams.TeamsSettings(type="teams", webhook_url=f"{url}/flow?sig=s")),
    "webhook": lambda url: webhook.build(
        "ops", webhook.WebhookSettings(type="webhook", url=f"{url}/hook", secret="whsec_" + "A" * 32)
    ),
    "slack": lambda url: slack.build(
        "ops", slack.SlackSettings(type="slack", token="xoxb-1-2-s", channel="C0ALERTS01", api_url=f"{url}/api")
    ),
    "slack-webhook": lambda url: slack.build(
        "ops", slack.SlackSettings(type="slack", webhook_url=f"{url}/services/T/B/s")
    ),
    "statuspage": lambda url: statuspage.build(
        "ops",
        statuspage.StatuspageSettings(
            type="statuspage", api_url=f"{url}/v1", page_id="pg0000000001", api_key="k", min_severity="SEV4"
        ),
    ),
}
"""The channels that speak HTTP."""
EVERY: dict[str, Build] = {
    **CHANNELS,
    "email": lambda url: email.build("ops", mail_settings(url)),
}
THREAD = {"channel": "C0ALERTS01", "ts": "1700000000.000100", "incident": "i00000000001", "posted": "webhook"}
"""What earlier deliveries could have left, for every channel at once (each reads its own keys)."""


@pytest.fixture
async def io(clock: Clock) -> AsyncIterator[Io]:
    async with Http(timeout=0.5) as http:
        yield Io(http, clock)


# ---- every signal ---------------------------------------------------------------------------------


@pytest.mark.parametrize("thread", [{}, THREAD], ids=["first", "threaded"])
@pytest.mark.parametrize("signal", list(Signal))
@pytest.mark.parametrize("kind", list(EVERY))
async def test_every_signal_gets_a_result_never_an_exception(
    kind: str, signal: Signal, thread: dict[str, str], io: Io
) -> None:
    channel = EVERY[kind](closed_url())  # nothing listens: a request is a Failed, never a hang
    result = await channel.send(replace(delivery(signal), thread=thread), Script(), io)
    assert isinstance(result, Sent | Failed | Skipped)
    if not channel.wants(signal):
        assert isinstance(result, Skipped), result
    assert isinstance(channel.preview(delivery(signal), Script()), dict)


# ---- maybe sent -----------------------------------------------------------------------------------

Mode = Literal["drop", "stall"]


@contextlib.asynccontextmanager
async def answerless(mode: Mode) -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 that takes each request whole and never answers it: it closes the connection
    (``drop``), or keeps it open until the client gives up (``stall``). Its base URL."""
    writers: list[asyncio.StreamWriter] = []

    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            await reader.readexactly(int(length[1]) if length else 0)
            if mode == "stall":
                await reader.read()  # until the client closes
        await _closed(writer)

    server = await asyncio.start_server(take, "127.0.0.1", 0)
    async with server:
        try:
            yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        finally:
            for writer in writers:
                await _closed(writer)


async def _closed(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.mark.parametrize(("mode", "reason"), [("drop", Reason.OTHER), ("stall", Reason.TIMEOUT)])
@pytest.mark.parametrize("kind", list(CHANNELS))
async def test_a_request_taken_but_never_answered_may_have_been_sent(
    kind: str, mode: Mode, reason: Reason, io: Io
) -> None:
    async with answerless(mode) as url:
        result = await CHANNELS[kind](url).send(delivery(), Script(), io)
    assert isinstance(result, Failed) and (result.reason, result.maybe_sent, result.permanent) == (reason, True, False)


@pytest.mark.parametrize("kind", list(EVERY))
async def test_a_connection_refused_sent_nothing(kind: str, io: Io) -> None:
    result = await EVERY[kind](closed_url()).send(delivery(), Script(), io)
    assert isinstance(result, Failed) and (result.reason, result.maybe_sent) == (Reason.OTHER, False)


@pytest.mark.parametrize("kind", ["slack", "statuspage"])
async def test_a_lookup_after_a_crash_whose_answer_was_lost_sent_nothing(kind: str, io: Io) -> None:
    """Resumed, these channels first read what the provider has (a GET): losing its answer changes nothing."""
    async with answerless("drop") as url:
        result = await CHANNELS[kind](url).send(delivery(resumed=True), Script(), io)
    assert isinstance(result, Failed) and (result.reason, result.maybe_sent) == (Reason.OTHER, False)


@pytest.mark.parametrize(("mode", "maybe_sent"), [("drop", True), ("stall", True), (None, False)])
async def test_the_http_edge_says_whether_a_request_may_have_arrived(mode: Mode | None, maybe_sent: bool) -> None:
    """``None``: nothing listens (connection refused)."""
    async with contextlib.AsyncExitStack() as stack, Http(timeout=0.5) as http:
        url = closed_url() if mode is None else await stack.enter_async_context(answerless(mode))
        with pytest.raises(Unreachable) as lost:
            await http.request("POST", f"{url}/x", json={"a": 1})
    assert lost.value.maybe_sent is maybe_sent


# ---- destinations ---------------------------------------------------------------------------------

NONE_TAKEN = ["pagerduty", "teams", "webhook", "slack-webhook", "statuspage"]


@pytest.mark.parametrize("kind", NONE_TAKEN)
def test_an_endpoint_or_a_page_takes_no_destination(kind: str) -> None:
    channel = EVERY[kind]("https://provider.example")
    assert channel.destination_problem("") is None
    problem = channel.destination_problem("elsewhere")
    assert problem is not None and "destination" in problem


@pytest.mark.parametrize(
    ("kind", "destination", "problem"),
    [
        ("email", "dba@example.org", None),
        ("email", "dba@example.org, ops@example.net", None),
        ("email", "", None),
        ("email", "dba", "is not a mail address"),
        ("email", "dba@example.org, b@", "is not a mail address"),
        ("email", "x@example.org\r\nBcc: evil@example.com", "is not a mail address"),
        ("email", " , ", "no mail address"),
        ("slack", "C0123ABCD", None),
        ("slack", "G0123ABCD", None),
        ("slack", "D0123ABCD", None),
        ("slack", "", None),
        ("slack", "#incidents", "is not a Slack channel id"),
        ("slack", "c0123abcd", "is not a Slack channel id"),
        ("slack", "C0123", "is not a Slack channel id"),
        ("slack", "U0123ABCD", "is not a Slack channel id"),
    ],
)
def test_which_destinations_a_route_may_give(kind: str, destination: str, problem: str | None) -> None:
    found = EVERY[kind]("https://provider.example").destination_problem(destination)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and "\n" not in found


def test_every_channel_answers_the_protocol() -> None:
    """``Channel`` is a Protocol: this is where a channel missing a method would show."""
    names = [m for m in dir(Channel) if not m.startswith("_")]
    for kind, make in EVERY.items():
        channel: Any = make("https://provider.example")
        assert [m for m in names if not hasattr(channel, m)] == [], kind
