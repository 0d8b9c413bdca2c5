"""The PagerDuty channel against the fake Events API v2 (tests/fakes/pagerduty.py), over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pydantic
import pytest

from receiver.incidents.lifecycle import Signal
from receiver.notify.channel import Io, Replay
from receiver.notify.channels.pagerduty import (
    MAX_EVENT_BYTES,
    TYPE,
    PagerDutyChannel,
    PagerDutySettings,
    after_test,
    build,
    dedup_key,
    may_have_triggered,
)
from receiver.notify.content import TRUNCATED, Markup
from receiver.notify.model import Failed, Reason, Result, Sent
from tests.channel_support import CRLF, HOSTILE, INCIDENT, LINK, Script, closed_url, degradations, delivery
from tests.conftest import Clock
from tests.fakes.pagerduty import PagerDutyFake
from tests.fakes.server import Fault

KEY = "R0123456789abcdef0123456789abcde"
OTHER_KEY = "Pfedcba9876543210fedcba987654321"


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[PagerDutyFake]:
    async with PagerDutyFake(clock=clock) as server:
        yield server


def channel(url: str, key: str = KEY, **settings: Any) -> PagerDutyChannel:
    return build("pd", PagerDutySettings(type="pagerduty", routing_key=key, api_url=url, **settings))


def last_event(fake: PagerDutyFake) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[-1].body
    return body


async def test_opening_triggers_the_incidents_alert_with_what_pagerduty_shows(
    fake: PagerDutyFake, io: Io, clock: Clock
) -> None:
    opened = delivery(Signal.OPENED)

    result = await channel(fake.url, source="prod-eu").send(opened, Script(), io)

    assert result == Sent(provider_id=INCIDENT)
    assert fake.pages(INCIDENT) == 1
    (request,) = fake.requests
    assert (request.path, request.status, request.headers["Content-Type"]) == ("/v2/enqueue", 202, "application/json")
    event = request.body
    assert {k: v for k, v in event.items() if k != "payload"} == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": INCIDENT,
        "client": "receiver",
        "client_url": LINK,
        "links": [{"href": LINK, "text": f"Incident {INCIDENT}"}],
    }
    payload = event["payload"]
    assert payload["source"] == "prod-eu" and payload["severity"] == "error"
    assert payload["timestamp"] == opened.at.isoformat()
    assert (payload["component"], payload["group"]) == ("shop", f"shop, {HOSTILE}")
    assert payload["class"] == Script().title
    assert payload["custom_details"] == {
        "incident": INCIDENT,
        "status": "triggered",
        "severity": "SEV2",
        "services": ["shop", HOSTILE],
        "event": "opened line one Bcc: attacker@evil.example line two",
        "details": "TEXT-START the incident TEXT-END",
    }


async def test_the_summary_is_plain_text_on_one_line_within_1024_characters(fake: PagerDutyFake, io: Io) -> None:
    long = Script(summary=f"{CRLF} {HOSTILE} " + "y" * 5000)

    assert isinstance(await channel(fake.url).send(delivery(), long, io), Sent)

    summary = last_event(fake)["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith(TRUNCATED)
    assert summary.startswith(f"line one Bcc: attacker@evil.example line two {HOSTILE} yyy")
    assert "\r" not in summary and "\n" not in summary
    assert long.asked[0][0] is Markup.PLAIN


async def test_a_worse_incident_updates_the_alert_without_paging_again_and_acknowledge_and_resolve_follow(
    fake: PagerDutyFake, io: Io
) -> None:
    pd = channel(fake.url)
    steps = [
        (Signal.OPENED, Script(severity="SEV3")),
        (Signal.ESCALATED, Script(severity="SEV1", summary="worse")),
        (Signal.SERVICES_JOINED, Script(severity="SEV1", services=("shop", "payments"))),
        (Signal.ACKNOWLEDGED, Script()),
        (Signal.RESOLVED, Script()),
        (Signal.REOPENED, Script(severity="SEV4")),
    ]

    results = [await pd.send(delivery(signal), script, io) for signal, script in steps]

    assert results == [Sent(provider_id=INCIDENT)] * len(steps)
    assert [o.effect for o in fake.outcomes] == [
        "created", "deduplicated", "deduplicated", "acknowledged", "resolved", "created"
    ]  # fmt: skip
    assert fake.pages(INCIDENT) == 2  # opened, and reopened after it was resolved
    first, second = fake.alerts
    triggers = [e["payload"] for e in first.events if e["event_action"] == "trigger"]
    assert [p["severity"] for p in triggers] == ["warning", "critical", "critical"]
    assert triggers[1]["summary"] == "worse" and triggers[2]["group"] == "shop, payments"
    assert first.status == "resolved" and second.status == "triggered" and second.payload["severity"] == "info"


@pytest.mark.parametrize("signal", [Signal.ACKNOWLEDGED, Signal.RESOLVED])
async def test_acknowledge_and_resolve_carry_only_the_key_and_the_dedup_key(
    fake: PagerDutyFake, io: Io, signal: Signal
) -> None:
    script = Script()

    assert await channel(fake.url).send(delivery(signal), script, io) == Sent(provider_id=INCIDENT)

    action = "acknowledge" if signal is Signal.ACKNOWLEDGED else "resolve"
    assert last_event(fake) == {"routing_key": KEY, "event_action": action, "dedup_key": INCIDENT}
    assert script.asked == []  # nothing rendered for them
    assert fake.outcomes[-1].effect == "dropped"  # no alert was open for it: PagerDuty drops it


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("SEV1", "critical"),
        ("SEV2", "error"),
        ("SEV3", "warning"),
        ("SEV4", "info"),
        ("", "warning"),
        ("SEV9", "warning"),
    ],
)
async def test_severity_mapping(fake: PagerDutyFake, io: Io, severity: str, expected: str) -> None:
    assert isinstance(await channel(fake.url).send(delivery(), Script(severity=severity), io), Sent)

    assert last_event(fake)["payload"]["severity"] == expected
    assert last_event(fake)["payload"]["custom_details"]["severity"] == (severity or "unclassified")


@pytest.mark.parametrize("signal", list(Signal))
def test_which_signals_it_sends(signal: Signal) -> None:
    sends = {
        Signal.OPENED, Signal.ESCALATED, Signal.SERVICES_JOINED, Signal.REOPENED,
        Signal.ACKNOWLEDGED, Signal.RESOLVED, Signal.TEST, Signal.PAGED,
    }  # fmt: skip
    assert channel("https://events.pagerduty.com").wants(signal) is (signal in sends)


async def test_a_test_opens_its_own_alert_never_the_incidents(fake: PagerDutyFake, io: Io) -> None:
    pd = channel(fake.url)
    test = delivery(Signal.TEST, event="test@1")

    first = await pd.send(test, Script(), io)
    again = await pd.send(test, Script(), io)
    other = await pd.send(delivery(Signal.TEST, event="test@2"), Script(), io)

    assert isinstance(first, Sent) and isinstance(other, Sent)
    assert first.provider_id.startswith("receiver-test-") and len(first.provider_id) == len("receiver-test-") + 16
    assert again == first and other.provider_id != first.provider_id
    assert first.note == "the test alert was triggered, then resolved"
    assert fake.pages(INCIDENT) == 0 and fake.pages() == 3  # a test pages: it is resolved after, not silenced
    assert [(o.dedup_key, o.effect) for o in fake.outcomes] == [
        (first.provider_id, "created"), (first.provider_id, "resolved"),
        (first.provider_id, "created"), (first.provider_id, "resolved"),
        (other.provider_id, "created"), (other.provider_id, "resolved"),
    ]  # fmt: skip
    assert {a.status for a in fake.alerts} == {"resolved"}  # nobody has a test alert to resolve
    assert dedup_key(test) == first.provider_id


async def test_a_test_whose_trigger_pagerduty_refused_sends_no_resolve(fake: PagerDutyFake, io: Io) -> None:
    fake.faults.add(Fault.status_only(500))
    result = await channel(fake.url).send(delivery(Signal.TEST, event="test@1"), Script(), io)
    assert isinstance(result, Failed) and result.reason is Reason.SERVER_ERROR and not result.maybe_sent
    assert len(fake.requests) == 1 and fake.alerts == []


RESOLVE_K = "resolve the alert k in PagerDuty"


@pytest.mark.parametrize(
    ("triggered", "resolved", "outcome"),
    [
        (Sent("k"), Sent("k"), Sent("k", note="the test alert was triggered, then resolved")),
        (
            Sent("k"),
            Failed(Reason.SERVER_ERROR, "HTTP 502"),
            Sent("k", note=f"the test alert was triggered but not resolved (HTTP 502): {RESOLVE_K}"),
        ),
        (
            Failed(Reason.TIMEOUT, "no answer", maybe_sent=True),
            Sent("k"),
            Failed(Reason.TIMEOUT, "no answer; a resolve was sent in case it arrived", maybe_sent=True),
        ),
        (
            Failed(Reason.OTHER, "reset", maybe_sent=True),
            Failed(Reason.OTHER, "refused"),
            Failed(Reason.OTHER, "reset; if it arrived, resolve the alert k in PagerDuty", maybe_sent=True),
        ),
    ],
)
def test_what_a_test_says_about_its_alert(triggered: Sent | Failed, resolved: Result, outcome: Result) -> None:
    assert after_test(triggered, resolved, "k") == outcome


@pytest.mark.parametrize(
    ("result", "triggered"),
    [(Sent("k"), True), (Failed(Reason.TIMEOUT, "x", maybe_sent=True), True), (Failed(Reason.OTHER, "x"), False)],
)
def test_a_trigger_without_an_answer_may_have_opened_an_alert(result: Result, triggered: bool) -> None:
    assert may_have_triggered(result) is triggered


async def test_evidence_goes_first_then_alerts_then_the_body_is_cut_title_severity_link_kept(
    fake: PagerDutyFake, io: Io
) -> None:
    pd = channel(fake.url)
    for case in degradations(600_000):
        assert isinstance(await pd.send(delivery(), case.script, io), Sent)

        request = fake.requests[-1]
        assert request.status == 202 and len(request.raw) <= MAX_EVENT_BYTES
        assert case.script.asked[-1] == (Markup.PLAIN, case.detail)
        payload = request.body["payload"]
        assert case.check(payload["custom_details"]["details"])
        assert payload["severity"] == "error" and payload["class"] == case.script.title
        assert request.body["links"] == [{"href": LINK, "text": f"Incident {INCIDENT}"}]


async def test_a_refused_event_is_a_permanent_client_error_naming_pagerdutys_errors(
    fake: PagerDutyFake, io: Io
) -> None:
    errors = ["'payload.summary' is missing or blank", "'payload.severity' must be one of critical, error"]
    fake.faults.add(
        Fault.json(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
    )

    result = await channel(fake.url).send(delivery(), Script(), io)

    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.CLIENT_ERROR, True)
    assert result.message == f"HTTP 400: Event object is invalid: {errors[0]}; {errors[1]}"


async def test_an_unknown_routing_key_is_an_authentication_error_that_never_shows_the_key(clock: Clock, io: Io) -> None:
    async with PagerDutyFake(clock=clock, routing_keys=[OTHER_KEY]) as fake:
        result = await channel(fake.url).send(delivery(), Script(), io)

        assert fake.requests[-1].status == 400 and fake.pages() == 0
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.AUTH_ERROR, True)
    assert "Invalid routing key" in result.message and KEY not in result.message


async def test_an_answer_repeating_the_key_is_redacted(fake: PagerDutyFake, io: Io) -> None:
    fake.faults.add(Fault.json(400, {"message": "Event object is invalid", "errors": [f"no service for {KEY}"]}))

    result = await channel(fake.url).send(delivery(), Script(), io)

    assert isinstance(result, Failed) and KEY not in result.message and "<routing key>" in result.message


async def test_throttled_is_rate_limited_without_a_retry_after(clock: Clock, io: Io) -> None:
    async with PagerDutyFake(clock=clock, rate_limit=1) as fake:
        pd = channel(fake.url)
        assert isinstance(await pd.send(delivery(), Script(), io), Sent)

        result = await pd.send(delivery(Signal.ESCALATED), Script(), io)

        assert fake.requests[-1].status == 429 and "Retry-After" not in fake.requests[-1].headers
    assert isinstance(result, Failed)
    assert (result.reason, result.retry_after, result.permanent) == (Reason.RATE_LIMITED, None, False)
    assert "arriving too quickly" in result.message


@pytest.mark.parametrize(
    ("fault", "reason", "permanent"),
    [
        (Fault.json(500, {"status": "error"}), Reason.SERVER_ERROR, False),
        (Fault.status_only(502), Reason.SERVER_ERROR, False),
        (Fault.status_only(503), Reason.SERVER_ERROR, False),
        (Fault.status_only(401), Reason.AUTH_ERROR, True),
        (Fault.status_only(403), Reason.AUTH_ERROR, True),
        (Fault.status_only(404), Reason.CLIENT_ERROR, True),
    ],
)
async def test_statuses(fake: PagerDutyFake, io: Io, fault: Fault, reason: Reason, permanent: bool) -> None:
    fake.faults.add(fault)

    result = await channel(fake.url).send(delivery(), Script(), io)

    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (reason, permanent)
    assert result.message.startswith(f"HTTP {fault.status}")


async def test_no_answer_is_a_temporary_failure(io: Io) -> None:
    result = await channel(closed_url()).send(delivery(), Script(), io)

    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.OTHER, False) and KEY not in result.message


async def test_a_crash_interrupted_delivery_is_sent_again_and_pages_once(fake: PagerDutyFake, io: Io) -> None:
    pd = channel(fake.url)
    opened = delivery(Signal.OPENED)
    assert pd.replay(opened) is Replay.SAFE

    await pd.send(opened, Script(), io)
    result = await pd.send(delivery(Signal.OPENED, attempts=2, resumed=True), Script(), io)

    assert result == Sent(provider_id=INCIDENT)
    assert fake.pages(INCIDENT) == 1 and [o.effect for o in fake.outcomes] == ["created", "deduplicated"]


async def test_a_destination_is_refused_without_sending(fake: PagerDutyFake, io: Io) -> None:
    result = await channel(fake.url).send(delivery(destination=OTHER_KEY), Script(), io)

    assert isinstance(result, Failed) and result.permanent and OTHER_KEY not in result.message
    assert fake.requests == []


def test_the_routing_key_stays_hidden_in_the_preview_the_settings_and_the_rate_key() -> None:
    pd = channel("https://events.pagerduty.com")

    preview = pd.preview(delivery(), Script())

    assert preview["routing_key"] == "<routing key>" and preview["event_action"] == "trigger"
    assert KEY not in repr(pd) and KEY not in str(pd.settings)
    assert KEY not in pd.rate_key(delivery()) and pd.rate_key(delivery()) == pd.rate_key(delivery(Signal.RESOLVED))
    assert pd.rate_key(delivery()) != channel("https://events.pagerduty.com", OTHER_KEY).rate_key(delivery())
    assert pd.min_interval() == 0.5


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"routing_key": KEY[:31]}, "32 letters and digits"),
        ({"routing_key": KEY + "0"}, "32 letters and digits"),
        ({"routing_key": KEY[:31] + "-"}, "32 letters and digits"),
        ({"api_url": "https://events.pagerduty.com/v2/enqueue"}, "without a path"),
        ({"api_url": "events.pagerduty.com"}, "http(s) URL"),
        ({"source": " "}, "blank"),
        ({"severity": "critical"}, "Extra inputs"),
    ],
)
def test_settings_are_validated_without_repeating_the_key(settings: dict[str, Any], words: str) -> None:
    raw = {"type": "pagerduty", "routing_key": KEY, **settings}
    with pytest.raises(pydantic.ValidationError) as caught:
        TYPE.settings.model_validate(raw)

    (error,) = caught.value.errors()
    assert words in error["msg"] and str(raw["routing_key"]) not in error["msg"]


def test_settings_defaults() -> None:
    settings = PagerDutySettings.model_validate({"type": "pagerduty", "routing_key": KEY})

    assert (settings.api_url, settings.source, settings.client) == (
        "https://events.pagerduty.com",
        "receiver",
        "receiver",
    )
    assert TYPE.kind == "pagerduty" and build("pd", settings).kind == "pagerduty"
    assert PagerDutySettings.model_validate({**settings.model_dump(), "api_url": "http://127.0.0.1:9/"}).api_url == (
        "http://127.0.0.1:9"
    )
