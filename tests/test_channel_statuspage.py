"""The Statuspage channel against the fake Statuspage API (tests/fakes/statuspage.py) over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import pydantic
import pytest

from receiver.incidents.lifecycle import Signal
from receiver.notify.channel import Io, Replay
from receiver.notify.channels import statuspage
from receiver.notify.content import TRUNCATED, Compose, Detail, Markup, Message
from receiver.notify.http import Http
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent, Skipped, Target
from tests.conftest import T0, Clock
from tests.fakes.server import Fault
from tests.fakes.statuspage import StatuspageFake

KEY = "0123abcd-4567-89ef-0123-456789abcdef"
PAGE = "kctbh9vrtdwd"
API, WEB, DB = "cmp0000000a1", "cmp0000000b2", "cmp0000000c3"
SERVICES = {"shop/api": API, "shop/web": WEB}
INCIDENT = "INC-20261201-0001"


def delivery(signal: Signal = Signal.OPENED, thread: Mapping[str, str] | None = None, **changes: Any) -> Delivery:
    return replace(
        Delivery(1, f"{INCIDENT}/{signal}/page", INCIDENT, signal, Target("page"), "statuspage", "", "", T0, T0, 1),
        thread=thread or {},
        **changes,
    )


def composer(
    severity: str = "SEV1",
    services: tuple[str, ...] = ("shop/web", "shop/api", "shop/cart"),
    summary: str = "Checkout is unavailable",
    sizes: tuple[int, int, int] = (0, 0, 0),
) -> Compose:
    """External messages (no label values); ``sizes``: evidence, alerts and base body lengths, for the limit."""
    evidence, alerts, base = sizes

    def compose(markup: Markup, detail: Detail) -> Message:
        assert markup is Markup.PLAIN
        sections = ["We are investigating errors at checkout.", "b" * base]
        if detail < Detail.NO_ALERTS and alerts:
            sections.append("alerts:" + "a" * alerts)
        if detail < Detail.NO_EVIDENCE and evidence:
            sections.append("evidence:" + "e" * evidence)
        return Message(
            title=f"[{severity}] {INCIDENT}: checkout",
            severity=severity,
            status="triggered",
            link="",
            summary=summary,
            event="",
            body="\n".join(s for s in sections if s),
            services=services,
            audience="external",
        )

    return compose


def settings(fake: StatuspageFake, **overrides: Any) -> statuspage.StatuspageSettings:
    raw = {"type": "statuspage", "api_url": fake.api_url, "page_id": PAGE, "api_key": KEY, "components": SERVICES}
    return statuspage.StatuspageSettings.model_validate(raw | overrides)


@pytest.fixture
async def page(clock: Clock) -> AsyncIterator[StatuspageFake]:
    components = {API: "API", WEB: "Web", DB: "Database"}
    async with StatuspageFake(clock=clock, api_keys=[KEY], page_id=PAGE, components=components) as fake:
        yield fake


@pytest.fixture
async def io(clock: Clock) -> AsyncIterator[Io]:
    async with Http(timeout=5) as http:
        yield Io(http, clock)


async def send(
    fake: StatuspageFake, io: Io, what: Delivery | None = None, compose: Compose | None = None, **over: Any
) -> Result:
    channel = statuspage.StatuspageChannel("page", settings(fake, **over))
    return await channel.send(what or delivery(), compose or composer(), io)


async def opened(fake: StatuspageFake, io: Io, compose: Compose | None = None) -> str:
    """Open the Statuspage incident; its id."""
    result = await send(fake, io, compose=compose)
    assert isinstance(result, Sent)
    return result.thread["incident"]


async def test_a_severe_incident_opens_one_with_its_components(page: StatuspageFake, io: Io, clock: Clock) -> None:
    result = await send(page, io)
    assert isinstance(result, Sent)
    [created] = page.requests
    assert (created.method, created.path, created.status) == ("POST", f"/v1/pages/{PAGE}/incidents", 201)
    assert created.headers["Authorization"] == f"OAuth {KEY}"
    assert created.body == {
        "incident": {
            "name": "Checkout is unavailable",
            "status": "investigating",
            "body": "We are investigating errors at checkout.",
            "component_ids": [WEB, API],
            "components": {WEB: "major_outage", API: "major_outage"},
            "metadata": {"receiver": {"incident": INCIDENT}},
        }
    }
    incident = page.incidents[result.provider_id]
    assert result.thread == {"incident": incident["id"]}
    assert incident["status"] == "investigating" and incident["created_at"] == clock.now.isoformat()
    assert [page.components[c]["status"] for c in (API, WEB, DB)] == ["major_outage", "major_outage", "operational"]


def affected(status: str) -> dict[str, Any]:
    return {"component_ids": [WEB, API], "components": {WEB: status, API: status}}


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        (Signal.ACKNOWLEDGED, {"status": "identified"}),
        (Signal.MITIGATED, {"status": "monitoring"}),
        (Signal.STATUS_UPDATE, {}),
        (Signal.ESCALATED, affected("partial_outage")),
        (Signal.SERVICES_JOINED, affected("partial_outage")),
        (Signal.RESOLVED, {"status": "resolved", **affected("operational")}),
        (Signal.REOPENED, {"status": "investigating", **affected("partial_outage")}),
    ],
)
async def test_each_signal_updates_the_known_incident(
    page: StatuspageFake, io: Io, signal: Signal, expected: dict[str, Any]
) -> None:
    known = await opened(page, io)
    result = await send(page, io, delivery(signal, {"incident": known}), composer("SEV2"))
    assert isinstance(result, Sent)
    assert (result.provider_id, dict(result.thread)) == (known, {})
    patched = page.requests[-1]
    assert (patched.method, patched.path, patched.status) == ("PATCH", f"/v1/pages/{PAGE}/incidents/{known}", 200)
    assert patched.body == {"incident": {**expected, "body": "We are investigating errors at checkout."}}


async def test_a_lifecycle_on_the_page(page: StatuspageFake, io: Io, clock: Clock) -> None:
    known = await opened(page, io)
    thread = {"incident": known}
    seen = []
    for signal in (Signal.ACKNOWLEDGED, Signal.STATUS_UPDATE, Signal.MITIGATED, Signal.RESOLVED, Signal.REOPENED):
        clock.advance(seconds=2)
        assert isinstance(await send(page, io, delivery(signal, thread)), Sent)
        seen.append((page.incidents[known]["status"], page.components[WEB]["status"]))
    assert seen == [
        ("identified", "major_outage"),
        ("identified", "major_outage"),
        ("monitoring", "major_outage"),
        ("resolved", "operational"),
        ("investigating", "major_outage"),
    ]
    assert len(page.incidents) == 1 and len(page.incidents[known]["incident_updates"]) == 6


@pytest.mark.parametrize(
    ("severity", "minimum", "why"),
    [
        ("SEV2", "SEV1", "SEV2 is less severe than min_severity SEV1"),
        ("SEV4", "SEV3", "SEV4 is less severe than min_severity SEV3"),
        ("", "SEV4", "unclassified is less severe than min_severity SEV4"),
    ],
)
async def test_less_severe_incidents_stay_off_the_page(
    page: StatuspageFake, io: Io, severity: str, minimum: str, why: str
) -> None:
    for signal in (Signal.OPENED, Signal.ESCALATED, Signal.REOPENED):
        assert await send(page, io, delivery(signal), composer(severity), min_severity=minimum) == Skipped(why)
    assert page.requests == []


async def test_at_min_severity_the_component_status_follows_the_setting(page: StatuspageFake, io: Io) -> None:
    over = {"min_severity": "SEV3", "component_status": {"SEV3": "partial_outage"}}
    known = await send(page, io, compose=composer("SEV3"), **over)
    assert isinstance(known, Sent)
    assert page.components[WEB]["status"] == "partial_outage"
    assert settings(page, **over).component_status["SEV1"] == "major_outage"  # the others keep their default


@pytest.mark.parametrize("signal", [Signal.ACKNOWLEDGED, Signal.STATUS_UPDATE, Signal.RESOLVED, Signal.SERVICES_JOINED])
async def test_updates_of_an_incident_never_opened_here_are_skipped(
    page: StatuspageFake, io: Io, signal: Signal
) -> None:
    result = await send(page, io, delivery(signal))
    assert isinstance(result, Skipped) and "never severe enough" in result.why
    assert page.requests == []


async def test_an_update_with_nothing_to_say_is_skipped(page: StatuspageFake, io: Io) -> None:
    empty = composer()

    def silent(markup: Markup, detail: Detail) -> Message:
        return replace(empty(markup, detail), body=" ")

    result = await send(page, io, delivery(Signal.STATUS_UPDATE, {"incident": "i00000000001"}), silent)
    assert isinstance(result, Skipped) and page.requests == []


async def test_unmapped_services_set_no_component(page: StatuspageFake, io: Io) -> None:
    await send(page, io, compose=composer(services=("billing/api",)))
    [created] = page.requests
    assert "component_ids" not in created.body["incident"] and "components" not in created.body["incident"]
    assert created.status == 201


async def test_name_and_body_fit_statuspage_limits(page: StatuspageFake, io: Io) -> None:
    hostile = "Checkout\r\ndown\x00 " + "n" * 400
    known = await opened(page, io, composer(summary=hostile, sizes=(30_000, 10_000, 1_000)))
    incident = page.incidents[known]
    assert len(incident["name"]) <= statuspage.MAX_NAME and incident["name"].startswith("Checkout down n")
    [first] = incident["incident_updates"]
    assert "alerts:" in first["body"] and "evidence:" not in first["body"]
    huge = await send(page, io, delivery(Signal.STATUS_UPDATE, {"incident": known}), composer(sizes=(0, 0, 90_000)))
    assert isinstance(huge, Sent)
    latest = page.incidents[known]["incident_updates"][0]["body"]
    assert len(latest) <= statuspage.MAX_BODY and latest.endswith(TRUNCATED) and "alerts:" not in latest


async def test_the_page_rate_limit_is_rate_limited_with_a_one_second_wait(clock: Clock, io: Io) -> None:
    async with StatuspageFake(clock=clock, api_keys=[KEY], page_id=PAGE, components={WEB: "Web"}, rate_limit=1) as fake:
        assert isinstance(await send(fake, io, components={"shop/web": WEB}), Sent)
        result = await send(fake, io, components={"shop/web": WEB})
    assert isinstance(result, Failed)
    assert (result.reason, result.retry_after, result.permanent) == (Reason.RATE_LIMITED, 1.0, False)
    assert result.message.startswith("HTTP 420: Rate limit exceeded")


async def test_a_429_waits_as_long_as_retry_after_says(page: StatuspageFake, io: Io) -> None:
    page.faults.add(Fault.json(429, {"message": "slow down"}, retry_after=7))
    result = await send(page, io)
    assert result == Failed(Reason.RATE_LIMITED, "HTTP 429: slow down", 7.0)


@pytest.mark.parametrize(
    ("fault", "reason", "permanent", "words"),
    [
        (Fault.json(500, {"error": "internal"}), Reason.SERVER_ERROR, False, "HTTP 500: internal"),
        (Fault.status_only(503), Reason.SERVER_ERROR, False, "HTTP 503"),
        (Fault.json(400, {"message": "bad request"}), Reason.CLIENT_ERROR, True, "HTTP 400: bad request"),
        (Fault.json(403, {"message": "forbidden"}), Reason.AUTH_ERROR, True, "HTTP 403: forbidden"),
    ],
)
async def test_other_answers(
    page: StatuspageFake, io: Io, fault: Fault, reason: Reason, permanent: bool, words: str
) -> None:
    page.faults.add(fault)
    result = await send(page, io)
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent, result.message) == (reason, permanent, words)


async def test_a_bad_key_is_a_permanent_auth_error_that_never_shows_it(page: StatuspageFake, io: Io) -> None:
    result = await send(page, io, api_key="not-the-key-0000")
    assert result == Failed(Reason.AUTH_ERROR, "HTTP 401: Could not authenticate", permanent=True)
    page.faults.add(Fault.json(401, {"message": f"key {KEY} revoked"}))
    echoed = await send(page, io)
    assert isinstance(echoed, Failed) and KEY not in echoed.message and "***" in echoed.message


async def test_an_incident_deleted_at_statuspage_is_not_recreated(page: StatuspageFake, io: Io) -> None:
    result = await send(page, io, delivery(Signal.ACKNOWLEDGED, {"incident": "i99999999999"}))
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.CLIENT_ERROR, True)
    assert "i99999999999 no longer exists" in result.message
    assert [r.method for r in page.requests] == ["PATCH"] and page.incidents == {}


async def test_an_unknown_page_is_a_permanent_client_error(page: StatuspageFake, io: Io) -> None:
    result = await send(page, io, page_id="nosuchpage00")
    assert result == Failed(Reason.CLIENT_ERROR, "HTTP 404: no page nosuchpage00 (page_id)", permanent=True)


async def test_an_unknown_component_is_a_422_naming_it(page: StatuspageFake, io: Io) -> None:
    result = await send(page, io, components={"shop/web": "cmpnotthere1"})
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.CLIENT_ERROR, True)
    assert result.message.startswith("HTTP 422: component cmpnotthere1 does not exist on this page")


async def test_an_unreachable_api_is_temporary(page: StatuspageFake, io: Io) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/v1"
    result = await send(page, io, api_url=closed)
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.OTHER, False)
    assert KEY not in result.message


async def test_a_resumed_creation_finds_the_incident_made_before_the_crash(page: StatuspageFake, io: Io) -> None:
    known = await opened(page, io)
    await send(page, io, compose=composer(), what=replace(delivery(), incident="INC-20261201-0002"))
    result = await send(page, io, delivery(resumed=True))
    assert result == Sent(known, {"incident": known}, "found the Statuspage incident created before the crash")
    assert [r.method for r in page.requests] == ["POST", "POST", "GET"]
    assert page.requests[-1].path == f"/v1/pages/{PAGE}/incidents/unresolved"
    assert len(page.incidents) == 2


async def test_a_resumed_creation_that_never_arrived_creates_it(page: StatuspageFake, io: Io) -> None:
    result = await send(page, io, delivery(resumed=True))
    assert isinstance(result, Sent) and result.note == ""
    assert [r.method for r in page.requests] == ["GET", "POST"]


async def test_a_resumed_creation_that_cannot_look_is_temporary(page: StatuspageFake, io: Io) -> None:
    page.faults.add(Fault.status_only(502))
    result = await send(page, io, delivery(resumed=True))
    assert isinstance(result, Failed) and result.reason is Reason.SERVER_ERROR
    assert [r.method for r in page.requests] == ["GET"] and page.incidents == {}


def test_what_the_channel_declares(page: StatuspageFake) -> None:
    channel = statuspage.StatuspageChannel("page", settings(page))
    assert statuspage.TYPE.kind == channel.kind == "statuspage" and channel.audience == "external"
    assert channel.replay(delivery()) is Replay.RECONCILE
    assert channel.replay(delivery(Signal.ACKNOWLEDGED, {"incident": "i1"})) is Replay.SAFE
    assert channel.replay(delivery(Signal.REOPENED, {"incident": "i1"})) is Replay.SAFE
    assert channel.min_interval() == 1.0
    assert {s for s in Signal if channel.wants(s)} == {
        Signal.OPENED, Signal.ESCALATED, Signal.SERVICES_JOINED, Signal.ACKNOWLEDGED, Signal.MITIGATED,
        Signal.STATUS_UPDATE, Signal.RESOLVED, Signal.REOPENED, Signal.TEST,
    }  # fmt: skip
    assert KEY not in repr(channel) and KEY not in repr(channel.settings)


def test_preview_shows_the_request_without_the_key(page: StatuspageFake) -> None:
    channel = statuspage.StatuspageChannel("page", settings(page))
    shown = channel.preview(delivery(), composer())
    assert shown["method"] == "POST" and shown["url"] == f"{page.api_url}/pages/{PAGE}/incidents"
    assert shown["json"]["incident"]["components"] == {WEB: "major_outage", API: "major_outage"}
    assert KEY not in repr(shown)
    assert channel.preview(delivery(), composer("SEV3")) == {"skipped": "SEV3 is less severe than min_severity SEV1"}
    assert page.requests == []


GOOD: dict[str, Any] = {"type": "statuspage", "page_id": PAGE, "api_key": KEY}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"api_url": "http://api.statuspage.io/v1"}, "must be https"),
        ({"api_url": "ftp://api.statuspage.io/v1"}, "must be an http"),
        ({"page_id": "../other"}, "is not a Statuspage id"),
        ({"api_key": "  "}, "empty api_key"),
        ({"min_severity": "SEV5"}, "min_severity"),
        ({"components": {"shop/web": "cmp 1"}}, "is not a Statuspage id"),
        ({"component_status": {"SEV1": "down"}}, "component_status"),
        ({"component_status": {"P1": "major_outage"}}, "component_status"),
        ({"status_page": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_settings_are_validated(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=problem):
        statuspage.StatuspageSettings.model_validate(GOOD | change)


def test_settings_defaults() -> None:
    chosen = statuspage.StatuspageSettings.model_validate(GOOD)
    assert chosen.api_url == "https://api.statuspage.io/v1" and chosen.min_severity == "SEV1"
    assert chosen.component_status == statuspage.DEFAULT_COMPONENT_STATUS and chosen.components == {}


def test_the_rate_key_is_the_api_keys_whatever_the_page(page: StatuspageFake) -> None:
    """Statuspage limits each API key to 1 request a second, across every page it writes to."""
    one = statuspage.StatuspageChannel("page", settings(page))
    other_page = statuspage.StatuspageChannel("other-page", settings(page, page_id="pg0000000002"))
    other_key = statuspage.StatuspageChannel("page", settings(page, api_key="another-key"))
    assert one.rate_key(delivery()) == other_page.rate_key(delivery(Signal.RESOLVED, {"incident": "i1"}))
    assert one.rate_key(delivery()) != other_key.rate_key(delivery())
    assert KEY not in one.rate_key(delivery()) and PAGE not in one.rate_key(delivery())


async def test_a_test_reads_the_page_with_the_key_and_posts_nothing(page: StatuspageFake, io: Io) -> None:
    result = await send(page, io, delivery(Signal.TEST))
    assert result == Sent(PAGE, note="authenticated; nothing posted (a status page is public)")
    [request] = page.requests
    assert (request.method, request.path) == ("GET", f"/v1/pages/{PAGE}")
    assert request.headers["Authorization"] == f"OAuth {KEY}"
    assert page.incidents == {} and {c["status"] for c in page.components.values()} == {"operational"}


@pytest.mark.parametrize(
    ("over", "reason", "said"),
    [
        ({"api_key": "wrong-key"}, Reason.AUTH_ERROR, "HTTP 401: Could not authenticate"),
        ({"page_id": "nosuchpage000"}, Reason.CLIENT_ERROR, "HTTP 404: no page nosuchpage000 (page_id)"),
    ],
)
async def test_a_test_says_what_the_page_answered(
    page: StatuspageFake, io: Io, over: dict[str, str], reason: Reason, said: str
) -> None:
    result = await send(page, io, delivery(Signal.TEST), **over)
    assert isinstance(result, Failed) and (result.reason, result.permanent, result.message) == (reason, True, said)
    assert "wrong-key" not in result.message and page.incidents == {}


def test_a_tests_preview_shows_the_read(page: StatuspageFake) -> None:
    shown = statuspage.StatuspageChannel("page", settings(page)).preview(delivery(Signal.TEST), composer())
    assert shown == {"method": "GET", "url": f"{page.api_url}/pages/{PAGE}", "note": statuspage.TESTED}


@pytest.mark.parametrize("signal", [Signal.STEP, Signal.NOTE, Signal.REMINDER, Signal.ALERTS_CHANGED])
async def test_a_signal_it_does_not_want_is_skipped_even_with_a_known_incident(
    page: StatuspageFake, io: Io, signal: Signal
) -> None:
    opened_id = await opened(page, io)
    page.requests.clear()
    result = await send(page, io, delivery(signal, {"incident": opened_id}))
    assert isinstance(result, Skipped) and signal.value in result.why
    assert page.requests == []


async def test_a_destination_fails_for_good_and_is_a_configuration_problem(page: StatuspageFake, io: Io) -> None:
    channel = statuspage.StatuspageChannel("page", settings(page))
    result = await channel.send(delivery(target=Target("page", "other")), composer(), io)
    assert isinstance(result, Failed) and (result.reason, result.permanent) == (Reason.CLIENT_ERROR, True)
    assert channel.destination_problem("other") == result.message and channel.destination_problem("") is None
    assert page.requests == []
