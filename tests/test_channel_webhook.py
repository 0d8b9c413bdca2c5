"""The Standard Webhooks channel against a receiving endpoint on loopback that verifies as the spec says.

The endpoint's verification is written here from the specification
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md, "Verifying
webhook authenticity"), independently of the channel's signing: the signed content is
``{webhook-id}.{webhook-timestamp}.{body}``, the key the base64 after ``whsec_``, the header a space
delimited list of ``v1,<base64 HMAC-SHA256>``, compared in constant time, the timestamp within a
tolerance of now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import pydantic
import pytest
from aiohttp import web

from receiver.incidents.lifecycle import Signal
from receiver.notify.channel import Io, Replay
from receiver.notify.channels.webhook import TYPE, WebhookChannel, WebhookSettings, build
from receiver.notify.content import Detail, Markup
from receiver.notify.model import Failed, Reason, Sent
from tests.channel_support import CRLF, HOSTILE, INCIDENT, LINK, Script, closed_url, degradations, delivery
from tests.conftest import Clock
from tests.fakes.server import PARSED, FakeServer, Fault

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
TOLERANCE = 300


class Invalid(Exception):
    """The webhook is not authentic."""


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: datetime) -> Any:
    """The payload of an authentic webhook, else ``Invalid``: the specification's consumer side."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(now.timestamp() - int(timestamp)) > TOLERANCE:
        raise Invalid("timestamp outside the tolerance")
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{msg_id}.{timestamp}.{body.decode()}"
    expected = base64.b64encode(hmac.new(key, content.encode(), hashlib.sha256).digest()).decode()
    for signature in headers["webhook-signature"].split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(body)
    raise Invalid("no valid signature")


class Endpoint(FakeServer):
    """A webhook receiver: verifies each request (401 when not authentic) and answers 204, unless a fault is set."""

    def __init__(self, clock: Clock, secret: str = SECRET) -> None:
        super().__init__(clock=clock)
        self.secret = secret
        self.verified: list[Any] = []

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/hooks/incidents", self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            payload = verify(self.secret, request.headers, raw, self.clock())
        except Invalid as err:
            return web.Response(status=401, text=str(err))
        request[PARSED] = payload
        self.verified.append(payload)
        return web.Response(status=204)

    @property
    def hook_url(self) -> str:
        return self.url + "/hooks/incidents"


@pytest.fixture
async def endpoint(clock: Clock) -> AsyncIterator[Endpoint]:
    async with Endpoint(clock) as server:
        yield server


def channel(url: str, secret: str = SECRET, **settings: Any) -> WebhookChannel:
    return build("hooks", WebhookSettings(type="webhook", url=url, secret=secret, **settings))


async def test_an_event_is_posted_signed_as_the_specification_says(endpoint: Endpoint, io: Io, clock: Clock) -> None:
    acknowledged = delivery(Signal.ACKNOWLEDGED, event="acknowledged@1")
    script = Script(status="acknowledged")

    result = await channel(endpoint.hook_url).send(acknowledged, script, io)

    assert result == Sent()
    (request,) = endpoint.requests
    assert request.status == 204 and request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == acknowledged.key == f"{INCIDENT}/acknowledged@1/ops"
    assert request.headers["webhook-timestamp"] == str(int(clock.now.timestamp()))
    assert request.headers["webhook-signature"].startswith("v1,")
    assert endpoint.verified == [
        {
            "type": "incident.acknowledged",
            "timestamp": acknowledged.at.isoformat(),
            "data": {
                "incident": {
                    "id": INCIDENT,
                    "title": script.title,
                    "severity": "SEV2",
                    "status": "acknowledged",
                    "services": ["shop", HOSTILE],
                    "link": LINK,
                },
                "event": {
                    "signal": "acknowledged",
                    "text": acknowledged.text,
                    "actor": "alice",
                    "at": acknowledged.at.isoformat(),
                },
                "message": {"summary": script.summary, "body": script.text},
            },
        }
    ]
    assert set(script.asked) == {(Markup.PLAIN, Detail.FULL)}


async def test_sent_again_it_keeps_its_id_and_is_signed_afresh(endpoint: Endpoint, io: Io, clock: Clock) -> None:
    hook = channel(endpoint.hook_url)
    opened = delivery(Signal.OPENED)
    assert hook.replay(opened) is Replay.SAFE

    await hook.send(opened, Script(), io)
    clock.advance(seconds=90)
    await hook.send(delivery(Signal.OPENED, attempts=2, resumed=True), Script(), io)

    first, second = endpoint.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == opened.key
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 90
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    assert [r.status for r in endpoint.requests] == [204, 204] and len(endpoint.verified) == 2
    assert first.raw == second.raw


async def test_a_tampered_body_a_wrong_secret_or_a_stale_timestamp_fail_verification(
    endpoint: Endpoint, io: Io, clock: Clock
) -> None:
    await channel(endpoint.hook_url).send(delivery(), Script(), io)
    (request,) = endpoint.requests
    assert verify(SECRET, request.headers, request.raw, clock.now)["data"]["incident"]["severity"] == "SEV2"

    tampered = request.raw.replace(b'"severity":"SEV2"', b'"severity":"SEV4"')
    assert tampered != request.raw
    with pytest.raises(Invalid, match="signature"):
        verify(SECRET, request.headers, tampered, clock.now)
    with pytest.raises(Invalid, match="signature"):
        verify(OTHER_SECRET, request.headers, request.raw, clock.now)
    with pytest.raises(Invalid, match="signature"):
        verify(SECRET, {**request.headers, "webhook-id": "INC-20261122-0002/opened/hooks"}, request.raw, clock.now)
    clock.advance(seconds=TOLERANCE + 1)
    with pytest.raises(Invalid, match="timestamp"):
        verify(SECRET, request.headers, request.raw, clock.now)


async def test_hostile_label_text_arrives_as_exact_json_and_never_in_a_header(endpoint: Endpoint, io: Io) -> None:
    script = Script(title=f"{HOSTILE}\r\nX-Injected: yes", services=(HOSTILE, CRLF))

    assert await channel(endpoint.hook_url).send(delivery(), script, io) == Sent()

    (payload,) = endpoint.verified
    assert payload["data"]["incident"]["title"] == script.title
    assert payload["data"]["incident"]["services"] == [HOSTILE, CRLF]
    assert payload["data"]["message"]["summary"] == script.summary
    assert HOSTILE in payload["data"]["event"]["text"]
    headers = endpoint.requests[0].headers
    assert "X-Injected" not in headers
    assert not any(word in value for value in headers.values() for word in ("evil", "<", "\r", "\n", "Bcc"))


async def test_an_id_that_would_carry_a_full_stop_is_percent_encoded(endpoint: Endpoint, io: Io) -> None:
    dotted = delivery(channel="ops.hooks")

    assert await channel(endpoint.hook_url).send(dotted, Script(), io) == Sent()

    assert endpoint.requests[0].headers["webhook-id"] == f"{INCIDENT}/opened/ops%2Ehooks"


@pytest.mark.parametrize("signal", list(Signal))
async def test_every_signal_is_sent_typed_by_it(endpoint: Endpoint, io: Io, signal: Signal) -> None:
    hook = channel(endpoint.hook_url)
    assert hook.wants(signal)

    assert await hook.send(delivery(signal), Script(), io) == Sent()

    assert endpoint.verified[0]["type"] == f"incident.{signal.value}"


async def test_evidence_goes_first_then_alerts_then_the_body_is_cut_within_max_bytes(
    endpoint: Endpoint, io: Io
) -> None:
    limit = 20_000
    hook = channel(endpoint.hook_url, max_bytes=limit)
    for case in degradations(50_000):
        assert await hook.send(delivery(), case.script, io) == Sent()

        request = endpoint.requests[-1]
        assert request.status == 204 and len(request.raw) <= limit
        assert case.script.asked[-1] == (Markup.PLAIN, case.detail)
        assert case.check(request.body["data"]["message"]["body"])
        incident = request.body["data"]["incident"]
        assert (incident["title"], incident["severity"], incident["link"]) == (case.script.title, "SEV2", LINK)


async def test_what_cannot_fit_even_without_its_body_is_a_permanent_failure(endpoint: Endpoint, io: Io) -> None:
    result = await channel(endpoint.hook_url, max_bytes=16 * 1024).send(delivery(), Script(title="x" * 20_000), io)

    assert isinstance(result, Failed) and (result.reason, result.permanent) == (Reason.CLIENT_ERROR, True)
    assert "does not fit in 16384" in result.message and endpoint.requests == []


@pytest.mark.parametrize(
    ("fault", "reason", "permanent", "retry_after", "words"),
    [
        (Fault(410, b"unsubscribed"), Reason.CLIENT_ERROR, True, None, "endpoint is gone"),
        (Fault.status_only(429, retry_after=30), Reason.RATE_LIMITED, False, 30.0, "HTTP 429"),
        (Fault(500, b"boom"), Reason.SERVER_ERROR, False, None, "HTTP 500: boom"),
        (Fault.status_only(503, retry_after=5), Reason.SERVER_ERROR, False, 5.0, "HTTP 503"),
        (Fault(400, b"bad payload"), Reason.CLIENT_ERROR, True, None, "HTTP 400: bad payload"),
        (Fault.status_only(403), Reason.AUTH_ERROR, True, None, "HTTP 403"),
        (Fault(301, headers=(("Location", "https://new.example/hook"),)), Reason.CLIENT_ERROR, True, None, "redirect"),
    ],
)
async def test_statuses(
    endpoint: Endpoint, io: Io, fault: Fault, reason: Reason, permanent: bool, retry_after: float | None, words: str
) -> None:
    endpoint.faults.add(fault)

    result = await channel(endpoint.hook_url).send(delivery(), Script(), io)

    assert isinstance(result, Failed) and words in result.message
    assert (result.reason, result.permanent, result.retry_after) == (reason, permanent, retry_after)


@pytest.mark.parametrize("status", [200, 202, 204])
async def test_any_2xx_is_delivered(endpoint: Endpoint, io: Io, status: int) -> None:
    endpoint.faults.add(Fault.status_only(status))

    assert await channel(endpoint.hook_url).send(delivery(), Script(), io) == Sent()


async def test_an_endpoint_that_finds_the_signature_wrong_answers_401_an_authentication_error(
    clock: Clock, io: Io
) -> None:
    async with Endpoint(clock, secret=OTHER_SECRET) as endpoint:
        result = await channel(endpoint.hook_url).send(delivery(), Script(), io)

        assert endpoint.verified == [] and endpoint.requests[0].status == 401
    assert isinstance(result, Failed) and (result.reason, result.permanent) == (Reason.AUTH_ERROR, True)
    assert "no valid signature" in result.message and SECRET not in result.message


async def test_no_answer_is_a_temporary_failure(io: Io) -> None:
    result = await channel(closed_url("/hooks?token=T0KEN")).send(delivery(), Script(), io)

    assert isinstance(result, Failed) and (result.reason, result.permanent) == (Reason.OTHER, False)
    assert "T0KEN" not in result.message


async def test_a_destination_is_refused_without_sending(endpoint: Endpoint, io: Io) -> None:
    result = await channel(endpoint.hook_url).send(delivery(destination="https://else.example"), Script(), io)

    assert isinstance(result, Failed) and result.permanent and endpoint.requests == []


def test_the_secret_stays_hidden_and_the_rate_key_names_the_endpoint() -> None:
    hook = channel("https://hooks.example/in?token=T0KEN")

    assert SECRET not in repr(hook) and "T0KEN" not in hook.rate_key(delivery())
    assert hook.rate_key(delivery()) != channel("https://hooks.example/other").rate_key(delivery())
    assert hook.min_interval() == 0
    assert hook.preview(delivery(), Script())["type"] == "incident.opened"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"secret": base64.b64encode(bytes(32)).decode()}, "starts with 'whsec_'"),
        ({"secret": "whsec_not*base64!"}, "then base64"),
        ({"secret": "whsec_" + base64.b64encode(bytes(16)).decode()}, "24 to 64 random bytes (it has 16)"),
        ({"secret": "whsec_" + base64.b64encode(bytes(65)).decode()}, "24 to 64 random bytes (it has 65)"),
        ({"max_bytes": 1000}, "greater than or equal to 16384"),
        ({"url": "hooks.example/in"}, "http(s) URL"),
    ],
)
def test_settings_are_validated_without_repeating_the_secret(settings: dict[str, Any], words: str) -> None:
    raw = {"type": "webhook", "url": "https://hooks.example/in", "secret": SECRET, **settings}
    with pytest.raises(pydantic.ValidationError) as caught:
        TYPE.settings.model_validate(raw)

    (error,) = caught.value.errors()
    assert words in error["msg"] and str(raw["secret"]).removeprefix("whsec_") not in error["msg"]


def test_settings_defaults() -> None:
    settings = WebhookSettings.model_validate({"type": "webhook", "url": "https://hooks.example/in", "secret": SECRET})

    assert settings.max_bytes == 256 * 1024 and TYPE.kind == "webhook" and build("h", settings).kind == "webhook"
