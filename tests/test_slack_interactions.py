"""Slack interactivity: the signature and its replay window, the payload, the buttons, and clicks acting on a real app.

The requests are built by ``tests.fakes.slack.signed_interaction``, which signs as Slack documents it
(its own HMAC, not the code under test); the app runs inline on a real store, its Slack channel posting
to the fake Slack, and the buttons clicked are the ones the fake received.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from receiver.app import PROCESSOR, RUNNER, create_app
from receiver.config import ConfigError, Settings
from receiver.incidents.lifecycle import Signal
from receiver.kube import Kube
from receiver.notify.channel import Io
from receiver.notify.channels.slack import SlackApi, SlackSettings, build
from receiver.notify.channels.slack_blocks import MAX_VALUE, button, incident_buttons, main_payload, run_buttons
from receiver.notify.http import Http
from receiver.notify.model import Sent
from receiver.notify.slack_actions import (
    Command,
    Interaction,
    Op,
    Refusal,
    answerable,
    awaiting_run,
    decide,
    forged,
    interaction,
    origin,
)
from receiver.web.slack_interactions import SlackInteractions
from tests import channel_support as support
from tests.conftest import T0, Clock
from tests.e2e.harness import eventually
from tests.fakes.slack import TOKEN, SlackFake, block_problems, signed_interaction, slack_signature_headers
from tests.payloads import body
from tests.test_http import Client
from tests.test_openapi import _assert_documented, recording
from tests.test_runs import APPROVAL, crashloop

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
OTHER = "0123456789abcdef0123456789abcdef"
ALICE = "U0ALICE001"
STRANGER = "U0STRANGER"
CHANNEL = "C0ALERTS01"
API = {"Authorization": "Bearer api-token-0123456789"}
NOW = int(T0.timestamp())
T = TypeVar("T")


NOWHERE = "https://not-slack.invalid/actions/T0FAKE0001/1/x"
"""A ``response_url`` the app must not post to (not Slack's, not a configured origin): no traffic leaves 127.0.0.1."""


def clicked(
    *actions: tuple[str, str], user: str = ALICE, at: int = NOW, secret: str = SECRET, url: str = NOWHERE
) -> Any:
    return signed_interaction(secret, user, list(actions), at, response_url=url)


# ---- the signature and the replay window ------------------------------------------------------


def _check(body: bytes, headers: dict[str, str], secrets: tuple[str, ...] = (SECRET,)) -> str | None:
    return forged(secrets, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature"), body, T0)


def _signed(at: int = NOW, secret: str = SECRET, body: bytes = b"payload=%7B%7D") -> tuple[bytes, dict[str, str]]:
    return body, slack_signature_headers(secret, body, at)


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


SIGNATURES: dict[str, tuple[tuple[bytes, dict[str, str]], str | None]] = {
    "valid": (_signed(), None),
    "signed 5 minutes ago: still in the window": (_signed(NOW - 300), None),
    "signed 5 minutes ahead: still in the window": (_signed(NOW + 300), None),
    "wrong secret": (_signed(secret=OTHER), "does not match the body under any configured signing secret"),
    "stale: 5 minutes and 1 second old": (_signed(NOW - 301), "301 s old: more than 0:05:00 (a replay?)"),
    "a day old": (_signed(NOW - 86_400), "86400 s old"),
    "from the future": (_signed(NOW + 301), "301 s in the future"),
    "no timestamp": (
        (b"payload=%7B%7D", _without(_signed()[1], "X-Slack-Request-Timestamp")),
        "missing X-Slack-Request-Timestamp or X-Slack-Signature",
    ),
    "no signature": (
        (b"payload=%7B%7D", _without(_signed()[1], "X-Slack-Signature")),
        "missing X-Slack-Request-Timestamp or X-Slack-Signature",
    ),
    "timestamp not a number": (
        (b"payload=%7B%7D", {**_signed()[1], "X-Slack-Request-Timestamp": "12e3"}),
        "not a Unix time in seconds",
    ),
    "tampered body": ((b"payload=%7B%7D ", _signed()[1]), "does not match"),
    "signature of another version": (
        (
            b"payload=%7B%7D",
            {**_signed()[1], "X-Slack-Signature": _signed()[1]["X-Slack-Signature"].replace("v0", "v1")},
        ),
        "does not match",
    ),
}


@pytest.mark.parametrize(("request_", "problem"), SIGNATURES.values(), ids=SIGNATURES.keys())
def test_the_signature_and_its_replay_window(request_: tuple[bytes, dict[str, str]], problem: str | None) -> None:
    found = _check(*request_)
    assert found is None if problem is None else (found is not None and problem in found), found


def test_any_configured_secret_signs_and_the_reason_names_no_secret() -> None:
    body, headers = _signed(secret=OTHER)
    assert _check(body, headers, (SECRET, OTHER)) is None
    refused = _check(body, headers, (SECRET,))
    assert refused is not None and SECRET not in refused and OTHER not in refused


@given(st.binary(min_size=1, max_size=300), st.data())
def test_any_change_to_the_body_fails_the_signature(original: bytes, data: st.DataObject) -> None:
    _, headers = _signed(body=original)
    at = data.draw(st.integers(0, len(original) - 1))
    how = data.draw(st.sampled_from(["flip", "drop", "insert"]))
    if how == "flip":
        bit = data.draw(st.integers(0, 7))
        changed = original[:at] + bytes([original[at] ^ (1 << bit)]) + original[at + 1 :]
    elif how == "drop":
        changed = original[:at] + original[at + 1 :]
    else:
        changed = original[:at] + bytes([data.draw(st.integers(0, 255))]) + original[at:]
    assert _check(original, headers) is None
    assert _check(changed, headers) is not None


# ---- the payload and what it asks ---------------------------------------------------------------


def test_a_click_is_read_from_the_form_as_slack_sends_it() -> None:
    body, _ = signed_interaction(SECRET, ALICE, [(Op.ACKNOWLEDGE.value, support.INCIDENT)], NOW)
    found = interaction(body)
    assert found == Interaction(
        ALICE, ((Op.ACKNOWLEDGE.value, support.INCIDENT),), "https://hooks.slack.com/actions/T0FAKE0001/1/fake"
    )


def test_another_kind_of_interaction_is_nothing_to_do() -> None:
    body, _ = signed_interaction(SECRET, ALICE, [], NOW, kind="view_submission")
    assert interaction(body) is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff\xfe", "must be a form"),
        (b"payload", "must be a form"),
        (b"text=hello", "one payload field"),
        (b"payload=1&payload=2", "one payload field"),
        (b"payload=%5B1%5D", "payload: must be a JSON object"),
        (b"payload=%7Bnot+json", "payload: must be a JSON object"),
        (b"payload=" + b"%5B" * 100_000, "payload: must be a JSON object"),  # nested too deep: refused, not a crash
        (b"payload=%7B%22type%22%3A%22block_actions%22%7D", "payload.user.id"),
        (
            b"payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A%7B%22id%22%3A%22U0A%22%7D%7D",
            "payload.actions",
        ),
    ],
)
def test_a_body_that_is_not_an_interaction_says_what_is_wrong(body: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        interaction(body)


PEOPLE = {ALICE: "alice"}
DECISIONS: dict[str, tuple[tuple[str, str], str, Command | Refusal]] = {
    "a person acknowledges": (
        (Op.ACKNOWLEDGE.value, support.INCIDENT),
        ALICE,
        Command(Op.ACKNOWLEDGE, support.INCIDENT, "alice"),
    ),
    "anyone in the channel resolves, by their Slack id": (
        (Op.RESOLVE.value, support.INCIDENT),
        STRANGER,
        Command(Op.RESOLVE, support.INCIDENT, f"slack:{STRANGER}"),
    ),
    "a person approves a run": ((Op.APPROVE.value, "42"), ALICE, Command(Op.APPROVE, "42", "alice")),
    "a person rejects a run": ((Op.REJECT.value, "42"), ALICE, Command(Op.REJECT, "42", "alice")),
    "someone not configured may not approve": (
        (Op.APPROVE.value, "42"),
        STRANGER,
        Refusal(
            f"only people configured in oncall.people (by slack_user) may approve or reject a run; {STRANGER} is not"
        ),
    ),
    "nor reject": ((Op.REJECT.value, "42"), STRANGER, Refusal("")),
    "a button of someone else's": (("delete_everything", "x"), ALICE, Refusal("")),
    "an incident id that cannot be one": ((Op.ACKNOWLEDGE.value, "../etc"), ALICE, Refusal("names no incident")),
    "a run id that cannot be one": ((Op.APPROVE.value, support.INCIDENT), ALICE, Refusal("names no run")),
}


@pytest.mark.parametrize(("action", "user", "expected"), DECISIONS.values(), ids=DECISIONS.keys())
def test_what_a_button_asks(action: tuple[str, str], user: str, expected: Command | Refusal) -> None:
    [decided] = decide(Interaction(user, (action,)), PEOPLE)
    if isinstance(expected, Command):
        assert decided == expected
    else:
        assert isinstance(decided, Refusal) and expected.why in decided.why


@pytest.mark.parametrize(
    ("url", "answered"),
    [
        ("https://hooks.slack.com/actions/T1/2/abc", True),
        ("http://hooks.slack.com/actions/T1/2/abc", False),
        ("https://hooks.slack.com.evil.example/actions", False),
        ("https://hooks.slack.com@evil.example/actions", False),
        ("https://evil.example/actions", False),
        ("http://127.0.0.1:8080/actions/T1/2/abc", True),  # under a configured channel's API origin
        ("http://127.0.0.1:8080.evil.example/actions", False),
        ("", False),
    ],
)
def test_answers_go_only_to_slack_or_a_configured_origin(url: str, answered: bool) -> None:
    assert answerable(url, [origin("http://127.0.0.1:8080/api")]) is answered


@given(
    st.lists(
        st.tuples(
            st.sampled_from([*(o.value for o in Op), "other"]),
            st.sampled_from([support.INCIDENT, "42"]) | st.text(max_size=40),
        ),
        max_size=5,
    ),
    st.booleans(),
)
def test_every_button_is_a_command_a_person_may_give_or_a_refusal(actions: list[tuple[str, str]], known: bool) -> None:
    user = ALICE if known else STRANGER
    decided = decide(Interaction(user, tuple(actions)), PEOPLE)
    assert len(decided) == len(actions)
    for (action_id, value), one in zip(actions, decided, strict=True):
        if isinstance(one, Command):
            assert (one.op.value, one.target) == (action_id, value)
            assert one.actor == ("alice" if known else f"slack:{STRANGER}")
            assert known or not one.op.on_run  # only a configured person approves or rejects
        else:
            assert isinstance(one, Refusal) and one.why


def test_the_run_a_notification_announces_is_read_from_the_runners_line() -> None:
    assert awaiting_run("run 17 awaits approval (POST /api/v1/runs/17/approve)") == "17"
    assert awaiting_run("run 17 started") is None


# ---- the buttons ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "labels"),
    [
        ("triggered", ["Acknowledge", "Resolve"]),
        ("acknowledged", ["Resolve"]),
        ("mitigated", ["Resolve"]),
        ("resolved", []),
    ],
)
def test_the_incident_message_offers_what_its_status_allows(status: str, labels: list[str]) -> None:
    buttons = incident_buttons(support.INCIDENT, status)
    assert [b["text"]["text"] for b in buttons] == labels
    assert {b["value"] for b in buttons} <= {support.INCIDENT}
    message = support.Script(status=status)(*_slack_full())
    blocks = main_payload(message, "", buttons)["blocks"]
    actions = [b for b in blocks if b["type"] == "actions"]
    assert actions == ([{"type": "actions", "elements": buttons}] if labels else [])
    assert block_problems(blocks) == []


def test_approve_asks_first_and_reject_is_marked_dangerous() -> None:
    approve, reject = run_buttons("42")
    assert (approve["action_id"], approve["value"], approve["style"]) == (Op.APPROVE.value, "42", "primary")
    assert (
        approve["confirm"]["confirm"]["text"] == "Approve" and approve["confirm"]["title"]["text"] == "Approve run 42?"
    )
    assert (reject["action_id"], reject["style"], "confirm" in reject) == (Op.REJECT.value, "danger", False)
    assert block_problems([{"type": "actions", "elements": [approve, reject]}]) == []


def test_a_value_over_slacks_limit_is_refused() -> None:
    assert button(Op.RESOLVE, "Resolve", "x" * MAX_VALUE)["value"] == "x" * MAX_VALUE
    with pytest.raises(ValueError, match="at most 2000"):
        button(Op.RESOLVE, "Resolve", "x" * (MAX_VALUE + 1))


def _slack_full() -> tuple[Any, Any]:
    from receiver.notify.content import Detail, Markup

    return Markup.SLACK, Detail.FULL


def _channel(slack: SlackFake, **more: Any) -> SlackApi:
    raw = slack.channel_settings(CHANNEL) | more
    channel = build("team-slack", SlackSettings.model_validate(raw))
    assert isinstance(channel, SlackApi)
    return channel


@pytest.fixture
async def slack(clock: Clock) -> AsyncIterator[SlackFake]:
    async with SlackFake(clock=clock) as fake:
        fake.add_channel(CHANNEL, "alerts")
        yield fake


@pytest.mark.parametrize("interactive", [True, False])
async def test_buttons_only_with_a_signing_secret(slack: SlackFake, clock: Clock, interactive: bool) -> None:
    channel = _channel(slack, **({"signing_secret": SECRET} if interactive else {}))
    awaiting = replace(
        support.delivery(Signal.RUN_AWAITING_APPROVAL, channel="team-slack"),
        text="run 7 awaits approval (POST /api/v1/runs/7/approve)",
    )
    async with Http(timeout=5) as http:
        io = Io(http, clock)
        opened = await channel.send(support.delivery(channel="team-slack"), support.Script(), io)
        assert isinstance(opened, Sent)
        assert isinstance(await channel.send(replace(awaiting, thread=opened.thread), support.Script(), io), Sent)
    main, reply = slack.messages(CHANNEL)
    ids = [
        [e["action_id"] for b in m.blocks or [] if b["type"] == "actions" for e in b["elements"]] for m in (main, reply)
    ]
    if interactive:
        assert ids == [[Op.ACKNOWLEDGE.value, Op.RESOLVE.value], [Op.APPROVE.value, Op.REJECT.value]]
        assert reply.thread_ts == main.ts
    else:
        assert ids == [[], []]


def test_the_signing_secret_is_a_secret_and_not_blank() -> None:
    settings = SlackSettings.model_validate(
        {"type": "slack", "token": TOKEN, "channel": CHANNEL, "signing_secret": SECRET}
    )
    assert SECRET not in repr(settings) and settings.interactive
    with pytest.raises(ValueError, match="empty signing secret"):
        SlackSettings.model_validate({"type": "slack", "token": TOKEN, "channel": CHANNEL, "signing_secret": " "})


def test_the_signing_secret_comes_from_the_environment(tmp_path: Path) -> None:
    from receiver.config import load

    def raw() -> dict[str, Any]:  # load puts the environment's value in what it is given
        ops = {"type": "slack", "token": TOKEN, "channel": CHANNEL, "signing_secret": "env:SLACK_SIGNING"}
        return {"notify": {"channels": {"ops": ops}}, "data_dir": str(tmp_path)}

    loaded = load(None, {"SLACK_SIGNING": SECRET}, raw())
    ops = loaded.notify.channels["ops"]
    assert isinstance(ops, SlackSettings) and ops.signing_secret is not None
    assert ops.signing_secret.get_secret_value() == SECRET
    with pytest.raises(
        ConfigError, match=re.escape("notify.channels.ops.signing_secret: environment variable SLACK_SIGNING")
    ):
        load(None, {}, raw())


# ---- clicks on a real app -------------------------------------------------------------------------


@pytest.fixture
def start(
    aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock, slack: SlackFake, tmp_path: Path
) -> Any:
    """The app inline, its Slack channel interactive and posting to the fake; alice is U0ALICE001."""

    async def make(**raw: Any) -> tuple[Client, list[Any]]:
        channel = slack.channel_settings(CHANNEL) | {"signing_secret": SECRET}
        raw.setdefault("notify", {"channels": {"ops": channel}, "routes": [{"channels": ["ops"]}]})
        raw.setdefault("oncall", {"people": {"alice": {"timezone": "Europe/Berlin", "slack_user": ALICE}}})
        settings = make_settings(api={"token": "api-token-0123456789"}, **raw)
        app = create_app(
            settings, registry=CollectorRegistry(), clock=clock, engine="inline", kube=Kube(None, dry_run=True)
        )
        answers = recording(app)
        return await aiohttp_client(app), answers

    return make


async def opened(client: Client) -> str:
    response = await client.post("/api/v1/alerts", data=body(crashloop()), headers={"Content-Type": "application/json"})
    assert response.status == 200
    await client.server.app[PROCESSOR].drain()
    await client.server.app[RUNNER].drain()
    [incident] = (await (await client.get("/api/v1/incidents", headers=API)).json())["incidents"]
    return str(incident["id"])


async def incident(client: Client, id: str) -> dict[str, Any]:
    found: dict[str, Any] = await (await client.get(f"/api/v1/incidents/{id}", headers=API)).json()
    return found


async def click(client: Client, request: tuple[bytes, dict[str, str]], status: int = 200) -> str:
    data, headers = request
    response = await client.post("/api/v1/slack/interactions", data=data, headers=headers)
    assert response.status == status, await response.text()
    if response.content_type == "application/json":
        found = await response.json()
        return str(found.get("text") or found.get("error"))
    return await response.text()


def posted_buttons(slack: SlackFake) -> dict[str, str]:
    """action_id -> value of the buttons on the incident's message, as Slack shows it now."""
    main = slack.messages(CHANNEL)[0]
    return {e["action_id"]: e["value"] for b in main.blocks or [] if b["type"] == "actions" for e in b["elements"]}


async def test_the_buttons_slack_shows_acknowledge_then_resolve_as_the_clicking_person(
    start: Any, slack: SlackFake, clock: Clock
) -> None:
    client, answers = await start()
    id = await opened(client)
    shown = await eventually(lambda: _async(posted_buttons(slack) if slack.messages(CHANNEL) else None), "the message")
    assert shown == {Op.ACKNOWLEDGE.value: id, Op.RESOLVE.value: id}
    clock.advance(seconds=30)
    now = int(clock.now.timestamp())
    assert await click(client, clicked((Op.ACKNOWLEDGE.value, shown[Op.ACKNOWLEDGE.value]), at=now)) == ""
    acked = await incident(client, id)
    assert acked["status"] == "acknowledged"
    assert (acked["timeline"][-1]["actor"], acked["timeline"][-1]["text"]) == ("alice", "acknowledged in Slack")
    again = await click(client, clicked((Op.ACKNOWLEDGE.value, id), at=now))
    assert again == f"{id}: an incident that is acknowledged cannot become acknowledged"
    assert slack.received("/actions/") == []  # its response_url is neither Slack's nor a configured origin
    await eventually(
        lambda: _async(posted_buttons(slack) == {Op.RESOLVE.value: id}), "the message edited: Resolve only"
    )
    assert await click(client, clicked((Op.RESOLVE.value, id), user=STRANGER, at=now)) == ""
    resolved = await incident(client, id)
    assert resolved["status"] == "resolved" and resolved["timeline"][-1]["actor"] == f"slack:{STRANGER}"
    assert (
        await click(client, clicked((Op.RESOLVE.value, "INC-20200101-0001"), at=now)) == "no incident INC-20200101-0001"
    )
    _assert_documented(answers)


async def _async(value: T) -> T:
    return value


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (lambda id: clicked((Op.ACKNOWLEDGE.value, id), secret=OTHER), "does not match"),
        (lambda id: clicked((Op.ACKNOWLEDGE.value, id), at=NOW - 301), "301 s old"),
        (lambda id: clicked((Op.ACKNOWLEDGE.value, id), at=NOW + 3600), "in the future"),
        (lambda id: (clicked((Op.ACKNOWLEDGE.value, id))[0], {}), "missing X-Slack-Request-Timestamp"),
        (lambda id: (clicked((Op.RESOLVE.value, id))[0], clicked((Op.ACKNOWLEDGE.value, id))[1]), "does not match"),
    ],
    ids=["forged", "stale", "future", "unsigned", "body swapped"],
)
async def test_a_forged_or_stale_click_is_refused_and_changes_nothing(
    start: Any, request_: Callable[[str], tuple[bytes, dict[str, str]]], words: str
) -> None:
    client, answers = await start()
    id = await opened(client)
    before = await incident(client, id)
    assert words in await click(client, request_(id), status=401)
    after = await incident(client, id)
    assert after["status"] == "triggered" and after["timeline"] == before["timeline"]
    _assert_documented(answers)


async def test_bad_payloads_are_400_and_other_interactions_200(start: Any) -> None:
    client, answers = await start()
    data = b"payload=%5B%5D"
    assert "must be a JSON object" in await click(client, (data, slack_signature_headers(SECRET, data, NOW)), 400)
    assert await click(client, signed_interaction(SECRET, ALICE, [], NOW, kind="shortcut")) == ""
    _assert_documented(answers)


async def test_without_a_signing_secret_clicks_are_not_taken(
    aiohttp_client: Any, make_settings: Any, clock: Clock
) -> None:
    app = create_app(make_settings(), registry=CollectorRegistry(), clock=clock, engine="inline")
    client = await aiohttp_client(app)
    assert "set signing_secret" in await click(client, clicked((Op.ACKNOWLEDGE.value, support.INCIDENT)), 403)


@pytest.fixture
def careful(tmp_path: Path) -> dict[str, Any]:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "careful.yaml").write_text(APPROVAL)
    return {"remediation": {"playbook_dirs": [str(playbooks)]}}


async def waiting_run(client: Client) -> str:
    runs = (await (await client.get("/api/v1/runs?status=awaiting_approval", headers=API)).json())["runs"]
    [run] = runs
    return str(run["id"])


async def run_status(client: Client, run: str) -> str:
    return str((await (await client.get(f"/api/v1/runs/{run}", headers=API)).json())["status"])


async def test_a_run_is_approved_from_its_button_by_a_configured_person_only(
    start: Any, slack: SlackFake, careful: dict[str, Any], clock: Clock
) -> None:
    client, answers = await start(**careful)
    await opened(client)
    run = await waiting_run(client)
    clock.advance(seconds=5)  # past the channel's pace (a post a second); the click is signed now

    def approve_shown() -> Any:
        found = [
            e for m in slack.messages(CHANNEL) for b in m.blocks or [] if b["type"] == "actions" for e in b["elements"]
        ]
        return _async([e["value"] for e in found if e["action_id"] == Op.APPROVE.value] or None)

    assert await eventually(approve_shown, "Approve in the thread") == [run]
    now = int(clock.now.timestamp())
    refused = await click(client, clicked((Op.APPROVE.value, run), user=STRANGER, at=now, url=slack.response_url()))
    assert f"{STRANGER} is not" in refused and await run_status(client, run) == "awaiting_approval"
    [told] = await eventually(lambda: _async(slack.received("/actions/")), "the answer posted to the response_url")
    assert told.body == {"response_type": "ephemeral", "replace_original": False, "text": refused}
    assert await click(client, clicked((Op.APPROVE.value, run), at=now)) == ""
    started = await (await client.get(f"/api/v1/runs/{run}", headers=API)).json()
    assert (started["status"], started["reason"]) == ("running", "approved by alice: approved in Slack")
    await client.server.app[RUNNER].drain()
    assert await run_status(client, run) == "succeeded"
    again = await click(client, clicked((Op.REJECT.value, run), at=now))
    assert again == f"{run}: run {run} is succeeded: only a run awaiting approval can be rejected"
    assert await click(client, clicked((Op.REJECT.value, "999"), at=now)) == "no run 999"
    _assert_documented(answers)


async def test_a_run_is_rejected_from_its_button(start: Any, careful: dict[str, Any]) -> None:
    client, _ = await start(**careful)
    await opened(client)
    run = await waiting_run(client)
    assert await click(client, clicked((Op.REJECT.value, run))) == ""
    assert await run_status(client, run) == "rejected"


class _Slow:
    """Commands that take their time: the click is answered before they are done, and they still finish."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.done: list[str] = []

    async def acknowledge(self, id: str, actor: str, reason: str) -> None:
        await self.release.wait()
        self.done.append(f"{id} {actor}")

    resolve = mitigate = note = update = acknowledge

    async def approve(self, run_id: str, actor: str, reason: str) -> None:
        raise AssertionError("not here")

    reject = reset = approve


async def test_a_slow_change_is_answered_in_time_and_still_made(aiohttp_client: Any, clock: Clock) -> None:
    from aiohttp import web

    slow = _Slow()
    handler = SlackInteractions([SECRET], PEOPLE, slow, slow, clock, answer_within=0.05)
    app = web.Application()
    app.router.add_post("/api/v1/slack/interactions", handler.handle)
    client = await aiohttp_client(app)
    said = await click(client, clicked((Op.ACKNOWLEDGE.value, support.INCIDENT)))
    assert said == f"{support.INCIDENT}: still being acknowledged; the message shows it when done" and slow.done == []
    slow.release.set()
    await eventually(lambda: _async(slow.done), "the change to be made")
    assert slow.done == [f"{support.INCIDENT} alice"]


def test_a_click_is_within_its_window_for_the_clock_a_year_ahead() -> None:
    later = T0 + timedelta(days=365)
    body, headers = signed_interaction(SECRET, ALICE, [], int(later.timestamp()))
    assert forged((SECRET,), headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"], body, later) is None
