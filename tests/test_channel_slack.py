"""The Slack channel against the Slack fake (tests/fakes/slack.py) over real HTTP on 127.0.0.1.

What an SRE relies on: one message per incident, edited as it moves, its news threaded under it;
after a crash the message is found again by its metadata, never posted twice; Slack's refusals
classified (rate limits with their ``Retry-After``, credentials, Slack's own failures, the rest);
alert text unable to ping a channel or disguise a link; any message within Slack's limits, title,
severity and link kept; the incoming webhook's degraded mode; nothing sent by a preview.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from receiver.incidents.lifecycle import Signal
from receiver.notify.channel import Io, Replay
from receiver.notify.channels.slack import SlackApi, SlackSettings, SlackWebhook, build
from receiver.notify.channels.slack_blocks import MAX_SECTION, chunks
from receiver.notify.content import Compose, Detail, Markup, Message, join_lines, one_line
from receiver.notify.escaping import escape as escape_for
from receiver.notify.http import Http
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent, Skipped
from tests import channel_support as support
from tests.channel_support import AT, CRLF, HOSTILE, INCIDENT, LINK, Script, closed_url, degradations
from tests.conftest import Clock
from tests.fakes.server import Fault, Recorded
from tests.fakes.slack import TOKEN, SlackFake

ALERTS = "C0ALERTS01"
OPS = "C0OPS00001"
LINK_MARKUP = f"<{LINK}|Open the incident>"
MENTION = "<!subteam^S0ONCALL01>"


def escape(text: str) -> str:
    return escape_for(text, Markup.SLACK)


# ---- what the tests send -----------------------------------------------------------------------


def composer(
    *,
    title: str = f"[SEV2] {INCIDENT}: KubePodCrashLooping in namespace shop",
    status: str = "triggered",
    event: str = "opened",
    severity: str = "SEV2",
    services: tuple[str, ...] = ("shop",),
    base: str = "*Firing:* 1 alert",
    alerts: str = "• KubePodCrashLooping cart-7d9",
    evidence: str = "```restarts: 12```",
) -> Compose:
    """Readable messages, for tests that assert a payload exactly (``Script``'s are hostile): ``base``, then the
    alerts, then the evidence, as the templates would render them (escaped)."""

    def compose(markup: Markup, detail: Detail) -> Message:
        assert markup is Markup.SLACK
        body = join_lines(
            [base, alerts if detail <= Detail.NO_EVIDENCE else "", evidence if detail == Detail.FULL else ""]
        )
        return Message(title, severity, status, LINK, title, event, body, services)

    return compose


def delivery(signal: Signal = Signal.OPENED, *, thread: Mapping[str, str] | None = None, **fields: Any) -> Delivery:
    """An outbox row for channel ``team-slack`` (``tests.channel_support``), with what earlier ones left."""
    return replace(support.delivery(signal, channel="team-slack", **fields), thread=dict(thread or {}))


def api_channel(slack: SlackFake, **overrides: Any) -> SlackApi:
    raw = {"type": "slack", "token": TOKEN, "channel": ALERTS, "api_url": f"{slack.url}/api"} | overrides
    channel = build("team-slack", SlackSettings.model_validate(raw))
    assert isinstance(channel, SlackApi)
    return channel


@pytest.fixture
async def slack(clock: Clock) -> AsyncIterator[SlackFake]:
    async with SlackFake(clock=clock) as fake:
        fake.add_channel(ALERTS, "alerts")
        yield fake


@pytest.fixture
async def io(clock: Clock) -> AsyncIterator[Io]:
    async with Http(timeout=5) as http:
        yield Io(http, clock)


def sent(result: Result) -> Sent:
    assert isinstance(result, Sent), result
    return result


def failed(result: Result) -> Failed:
    assert isinstance(result, Failed), result
    return result


def calls(slack: SlackFake) -> list[tuple[str, str]]:
    """The Web API methods the fake received, with the ``ts`` each named (thread_ts or ts)."""
    return [
        (r.path.removeprefix("/api/"), (r.body or {}).get("thread_ts") or r.query.get("ts", "")) for r in slack.requests
    ]


def mrkdwn_texts(body: Mapping[str, Any]) -> list[str]:
    """Every text of a payload Slack parses for markup: ``text`` and the blocks' ``mrkdwn``."""
    blocks = body.get("blocks") or []
    return [body["text"], *(b["text"]["text"] for b in blocks if b["text"]["type"] == "mrkdwn")]


# ---- one message per incident, edited, its news in its thread -----------------------------------


async def test_the_first_delivery_posts_the_incident_message_with_its_metadata(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack, mention=MENTION)

    result = sent(await channel.send(delivery(), composer(), io))

    (request,) = slack.requests
    assert (request.method, request.path) == ("POST", "/api/chat.postMessage")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    body = request.body
    assert body["channel"] == ALERTS and "thread_ts" not in body
    assert body["metadata"] == {
        "event_type": "receiver_incident",
        "event_payload": {"incident": INCIDENT, "key": f"{INCIDENT}/opened/team-slack"},
    }
    header, details, *sections = body["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": f"[SEV2] {INCIDENT}: KubePodCrashLooping in namespace shop",
            "emoji": True,
        },
    }
    assert details["text"]["text"] == join_lines(
        [MENTION, "*Severity:* SEV2   *Status:* triggered", "*Services:* shop", "*Latest:* opened", LINK_MARKUP]
    )
    assert [s["text"]["text"] for s in sections] == [
        "*Firing:* 1 alert\n• KubePodCrashLooping cart-7d9\n```restarts: 12```"
    ]
    assert body["text"].startswith(MENTION) and INCIDENT in body["text"]
    assert (body["unfurl_links"], body["unfurl_media"]) == (False, False)
    (message,) = slack.messages(ALERTS)
    assert result == Sent(message.ts, {"channel": ALERTS, "ts": message.ts}, "")


async def test_an_incident_is_one_message_edited_as_it_moves_with_its_news_threaded_under_it(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack)
    opened = sent(await channel.send(delivery(), composer(), io))
    thread, ts = opened.thread, opened.provider_id

    changed = await channel.send(delivery(Signal.ALERTS_CHANGED, thread=thread), composer(base="*Firing:* 3"), io)
    clock.advance(seconds=1)
    acked = await channel.send(
        delivery(Signal.ACKNOWLEDGED, thread=thread),
        composer(status="acknowledged", event="acknowledged by alice", base="*Firing:* 3"),
        io,
    )
    clock.advance(seconds=1)
    resolved = await channel.send(
        delivery(Signal.RESOLVED, thread=thread), composer(status="resolved", event="resolved", base="*Firing:* 0"), io
    )

    assert sent(changed) == Sent(ts, thread, "")
    assert calls(slack) == [
        ("chat.postMessage", ""),
        ("chat.update", ""),
        ("chat.postMessage", ts),
        ("chat.update", ""),
        ("chat.postMessage", ts),
        ("chat.update", ""),
    ]
    assert all(r.body["ts"] == ts and "metadata" not in r.body for r in slack.received("/api/chat.update"))
    main, ack_reply, resolved_reply = slack.messages(ALERTS)
    assert main.ts == ts and main.replies == [ack_reply.ts, resolved_reply.ts]
    assert sent(acked) == Sent(ack_reply.ts, thread, "") and sent(resolved).provider_id == resolved_reply.ts
    assert main.blocks is not None and "*Status:* resolved" in main.blocks[1]["text"]["text"]
    assert main.blocks[2]["text"]["text"].startswith("*Firing:* 0")
    assert ack_reply.blocks is not None and ack_reply.blocks[0]["text"]["text"] == "*acknowledged by alice*"
    assert ack_reply.metadata == {
        "event_type": "receiver_incident_event",
        "event_payload": {"incident": INCIDENT, "key": f"{INCIDENT}/acknowledged/team-slack"},
    }


async def test_a_channel_that_joins_later_gets_the_message_and_the_news_in_its_thread_in_one_send(
    slack: SlackFake, io: Io
) -> None:
    result = sent(await api_channel(slack).send(delivery(Signal.ESCALATED), composer(event="escalated to SEV1"), io))

    main, reply = slack.messages(ALERTS)
    assert calls(slack) == [("chat.postMessage", ""), ("chat.postMessage", main.ts)]
    assert result == Sent(main.ts, {"channel": ALERTS, "ts": main.ts}, "")
    assert main.metadata is not None and main.metadata["event_type"] == "receiver_incident"
    assert reply.metadata is not None and reply.metadata["event_type"] == "receiver_incident_event"
    assert reply.blocks is not None and reply.blocks[0]["text"]["text"] == "*escalated to SEV1*"


async def test_a_test_notification_is_one_post(slack: SlackFake, io: Io) -> None:
    result = sent(await api_channel(slack).send(delivery(Signal.TEST), composer(event="a test"), io))

    (message,) = slack.messages(ALERTS)
    assert calls(slack) == [("chat.postMessage", "")] and result.provider_id == message.ts


async def test_a_route_destination_overrides_the_channel_and_is_the_rate_key(slack: SlackFake, io: Io) -> None:
    channel = api_channel(slack)
    slack.add_channel(OPS, "ops")
    to_ops = delivery(destination=OPS)

    result = sent(await channel.send(to_ops, composer(), io))

    assert result.thread["channel"] == OPS and len(slack.messages(OPS)) == 1 and slack.messages(ALERTS) == []
    assert channel.rate_key(to_ops).startswith(f"{OPS}@") and channel.rate_key(delivery()).startswith(f"{ALERTS}@")
    assert channel.min_interval() == 1.0
    assert channel.wants(Signal.ALERTS_CHANGED) and channel.kind == "slack" and channel.audience == "internal"


def test_one_slack_channel_under_two_names_is_one_rate_key_and_another_app_another(slack: SlackFake) -> None:
    """Slack paces an app's posts per channel: whichever configured channel a delivery goes through."""
    alerts = api_channel(slack)
    ops = build("ops-slack", SlackSettings(type="slack", token=TOKEN, channel=OPS, api_url=f"{slack.url}/api"))
    other_app = api_channel(slack, token="xoxb-another-app-token")
    key = alerts.rate_key(delivery())

    assert ops.rate_key(delivery(destination=ALERTS)) == key == alerts.rate_key(delivery(Signal.RESOLVED))
    assert ops.rate_key(delivery()) != key and other_app.rate_key(delivery()) != key
    assert TOKEN not in key and "another" not in other_app.rate_key(delivery())


async def test_the_update_failing_after_the_reply_is_sent_with_a_note_and_the_reply_not_posted_again(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack)
    thread = sent(await channel.send(delivery(), composer(), io)).thread
    slack.api_error("internal_error", method="chat.update")
    clock.advance(seconds=1)

    result = sent(await channel.send(delivery(Signal.ACKNOWLEDGED, thread=thread), composer(), io))

    _main, reply = slack.messages(ALERTS)
    assert result.provider_id == reply.ts and result.thread == thread
    assert "not updated (chat.update: internal_error)" in result.note and "next update repairs it" in result.note
    assert len(slack.received("/api/chat.postMessage")) == 2


async def test_a_deleted_incident_message_is_posted_anew_on_its_next_edit(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack)
    old = sent(await channel.send(delivery(), composer(), io))
    del slack.channels[ALERTS].messages[old.provider_id]  # someone deleted it

    result = sent(await channel.send(delivery(Signal.ALERTS_CHANGED, thread=old.thread), composer(), io))

    (new,) = slack.messages(ALERTS)
    assert calls(slack)[1:] == [("chat.update", ""), ("chat.postMessage", "")]
    assert result == Sent(
        new.ts, {"channel": ALERTS, "ts": new.ts}, "the incident's message was deleted: posted a new one"
    )
    assert new.metadata is not None and new.metadata["event_payload"]["key"] == f"{INCIDENT}/alerts_changed/team-slack"


async def test_news_for_a_deleted_thread_opens_a_new_message_with_the_news_under_it(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack)
    old = sent(await channel.send(delivery(), composer(), io))
    del slack.channels[ALERTS].messages[old.provider_id]
    clock.advance(seconds=1)

    result = sent(await channel.send(delivery(Signal.ACKNOWLEDGED, thread=old.thread), composer(), io))

    new, reply = slack.messages(ALERTS)
    assert reply.thread_ts == new.ts and result.thread == {"channel": ALERTS, "ts": new.ts}
    assert result.note == "the incident's message was gone: posted a new one"


# ---- after a crash -----------------------------------------------------------------------------


def test_posts_are_reconciled_after_a_crash_and_edits_are_safe_to_make_again(slack: SlackFake) -> None:
    channel = api_channel(slack)
    thread = {"channel": ALERTS, "ts": "1.000001"}

    assert channel.replay(delivery()) is Replay.RECONCILE
    assert channel.replay(delivery(Signal.ALERTS_CHANGED)) is Replay.RECONCILE  # no message yet: it posts
    assert channel.replay(delivery(Signal.NOTE, thread=thread)) is Replay.RECONCILE
    assert channel.replay(delivery(Signal.ALERTS_CHANGED, thread=thread)) is Replay.SAFE


async def test_a_post_interrupted_by_a_crash_is_found_by_its_metadata_and_not_posted_again(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack)
    first = sent(await channel.send(delivery(), composer(), io))
    slack.add_human_message(ALERTS, "looking")
    clock.advance(seconds=1)
    await channel.send(delivery(event="opened@2"), composer(), io)  # another delivery's post: not this one

    again = sent(await channel.send(delivery(resumed=True), composer(), io))

    assert again == Sent(first.provider_id, first.thread, "found the message posted before the crash")
    assert len(slack.messages(ALERTS)) == 3  # the two posts and the human's: nothing new
    lookup = slack.requests[-1]
    assert (lookup.method, lookup.path) == ("GET", "/api/conversations.history")
    oldest = (AT - timedelta(minutes=5)).timestamp()
    assert lookup.query == {
        "channel": ALERTS,
        "include_all_metadata": "true",
        "limit": "200",
        "oldest": f"{oldest:.6f}",
    }


async def test_a_reply_interrupted_by_a_crash_is_found_in_the_thread_and_the_message_still_edited(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack)
    thread = sent(await channel.send(delivery(), composer(), io)).thread
    clock.advance(seconds=1)
    reply = sent(await channel.send(delivery(Signal.NOTE, thread=thread), composer(), io))

    again = sent(await channel.send(delivery(Signal.NOTE, thread=thread, resumed=True), composer(), io))

    assert again == Sent(reply.provider_id, thread, "found the message posted before the crash")
    assert len(slack.messages(ALERTS)) == 2
    assert calls(slack)[-2:] == [("conversations.replies", thread["ts"]), ("chat.update", "")]


async def test_a_joining_post_interrupted_between_its_message_and_its_reply_posts_only_the_reply(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack)
    await channel.send(delivery(Signal.ESCALATED), composer(), io)
    main, reply = slack.messages(ALERTS)
    del slack.channels[ALERTS].messages[reply.ts]  # as if the crash came between the two posts
    main.replies.clear()
    clock.advance(seconds=1)

    again = sent(await channel.send(delivery(Signal.ESCALATED, resumed=True), composer(), io))

    assert again.provider_id == main.ts and again.note == "found the message posted before the crash"
    assert [m.ts == main.ts for m in slack.messages(ALERTS)] == [True, False]
    assert calls(slack)[-3:] == [
        ("conversations.history", ""),
        ("conversations.replies", main.ts),
        ("chat.postMessage", main.ts),
    ]


async def test_a_post_not_found_after_a_crash_is_posted(slack: SlackFake, io: Io) -> None:
    result = sent(await api_channel(slack).send(delivery(resumed=True), composer(), io))

    (message,) = slack.messages(ALERTS)
    assert result == Sent(message.ts, {"channel": ALERTS, "ts": message.ts}, "")
    assert calls(slack) == [("conversations.history", ""), ("chat.postMessage", "")]


async def test_the_lookup_follows_cursors_but_reads_a_bounded_number_of_pages(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack)
    first = sent(await channel.send(delivery(), composer(), io))
    for i in range(250):
        slack.add_human_message(ALERTS, f"chatter {i}")

    found = sent(await channel.send(delivery(resumed=True), composer(), io))
    assert found.provider_id == first.provider_id and len(slack.received("/api/conversations.history")) == 2

    for i in range(800):
        slack.add_human_message(ALERTS, f"more chatter {i}")
    clock.advance(seconds=1)
    lost = sent(await channel.send(delivery(resumed=True), composer(), io))

    assert lost.provider_id != first.provider_id  # past the bound: posted again rather than read forever
    assert len(slack.received("/api/conversations.history")) == 2 + 5
    assert all(r.query.get("limit") == "200" for r in slack.received("/api/conversations.history"))


async def test_a_lookup_slack_refuses_for_good_posts_and_says_so_one_that_fails_for_now_is_retried(
    slack: SlackFake, io: Io
) -> None:
    channel = api_channel(slack)
    slack.api_error("service_unavailable", method="conversations.history")
    later = failed(await channel.send(delivery(resumed=True), composer(), io))
    slack.api_error("missing_scope", method="conversations.history")
    posted = sent(await channel.send(delivery(resumed=True), composer(), io))

    assert (later.reason, later.permanent) == (Reason.SERVER_ERROR, False)
    assert len(slack.messages(ALERTS)) == 1
    assert posted.note == "could not look for a post before the crash (conversations.history: missing_scope): posted"


# ---- Slack's refusals ----------------------------------------------------------------------------


async def test_http_429_is_a_rate_limit_with_slacks_retry_after(slack: SlackFake, io: Io, clock: Clock) -> None:
    channel = api_channel(slack)
    slack.rate_limit(retry_after=7, method="chat.postMessage")

    scripted = failed(await channel.send(delivery(), composer(), io))

    assert (scripted.reason, scripted.retry_after, scripted.permanent) == (Reason.RATE_LIMITED, 7.0, False)
    for i in range(3):  # the fake's tolerated burst, then its one a second
        sent(await channel.send(delivery(event=f"opened@{i}"), composer(), io))
    limited = failed(await channel.send(delivery(event="opened@3"), composer(), io))
    assert (limited.reason, limited.retry_after) == (Reason.RATE_LIMITED, 1.0)
    assert slack.requests[-1].status == 429


CODES = [
    ("ratelimited", Reason.RATE_LIMITED, False),
    *[
        (code, Reason.AUTH_ERROR, True)
        for code in (
            "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "missing_scope",
            "no_permission", "ekm_access_denied",
        )
    ],
    *[
        (code, Reason.CLIENT_ERROR, True)
        for code in (
            "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "invalid_blocks",
            "invalid_metadata_format", "too_many_attachments", "no_text", "message_not_found", "cant_update_message",
            "invalid_arguments",
        )
    ],
    *[
        (code, Reason.SERVER_ERROR, False)
        for code in ("internal_error", "fatal_error", "service_unavailable", "request_timeout")
    ],
    ("something_new", Reason.CLIENT_ERROR, True),
]  # fmt: skip


@pytest.mark.parametrize(("code", "reason", "permanent"), CODES)
async def test_ok_false_answers_are_classified(
    slack: SlackFake, io: Io, code: str, reason: Reason, permanent: bool
) -> None:
    slack.api_error(code)

    result = failed(await api_channel(slack).send(delivery(), composer(), io))

    assert (result.reason, result.permanent) == (reason, permanent)
    assert result.message.startswith(f"chat.postMessage: {code}") and TOKEN not in result.message
    assert slack.messages(ALERTS) == []


async def test_the_fakes_own_refusals_reach_the_same_classes(slack: SlackFake, io: Io) -> None:
    slack.set_token(TOKEN, "revoked")
    revoked = failed(await api_channel(slack).send(delivery(), composer(), io))
    slack.set_token(TOKEN, "active")
    slack.add_channel("C0PRIVATE1", "private", member=False)
    outside = failed(await api_channel(slack, channel="C0PRIVATE1").send(delivery(), composer(), io))
    bad_token = failed(await api_channel(slack, token="xoxb-wrong").send(delivery(), composer(), io))

    assert (revoked.reason, revoked.permanent, revoked.message) == (
        Reason.AUTH_ERROR,
        True,
        "chat.postMessage: token_revoked",
    )
    assert (outside.reason, outside.message) == (Reason.CLIENT_ERROR, "chat.postMessage: not_in_channel")
    assert bad_token.reason is Reason.AUTH_ERROR and "xoxb-wrong" not in bad_token.message


async def test_http_failures_and_no_answer(slack: SlackFake, io: Io) -> None:
    channel = api_channel(slack)
    slack.server_error(status=503)
    unavailable = failed(await channel.send(delivery(), composer(), io))
    slack.faults.add(Fault(200, b"<html>a proxy</html>", "text/html"))
    not_json = failed(await channel.send(delivery(), composer(), io))
    nowhere_url = closed_url("/api")
    nowhere = failed(await api_channel(slack, api_url=nowhere_url).send(delivery(), composer(), io))

    assert (unavailable.reason, unavailable.permanent) == (Reason.SERVER_ERROR, False)
    assert (not_json.reason, not_json.permanent) == (Reason.OTHER, False)
    assert (nowhere.reason, nowhere.permanent) == (Reason.OTHER, False)
    assert nowhere.message.startswith(f"chat.postMessage: POST {nowhere_url.removesuffix('/api')}/…")
    assert TOKEN not in nowhere.message


# ---- escaping and limits -----------------------------------------------------------------------


async def test_hostile_alert_text_cannot_ping_a_channel_or_disguise_a_link(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack, mention=MENTION)
    hostile = Script(severity=HOSTILE, status=HOSTILE, event=f"{HOSTILE} {CRLF}", text=escape(f"{HOSTILE} {CRLF}"))
    thread = sent(await channel.send(delivery(), hostile, io)).thread
    clock.advance(seconds=1)
    await channel.send(delivery(Signal.NOTE, thread=thread), hostile, io)

    bodies = [r.body for r in slack.requests if r.path in ("/api/chat.postMessage", "/api/chat.update")]
    assert len(bodies) == 3
    for body in bodies:
        for text in mrkdwn_texts(body):
            assert set(re.findall(r"<[^<>]*>", text)) <= {LINK_MARKUP, MENTION}, text
            assert "<!channel>" not in text and "<https://evil" not in text and "<script>" not in text
        assert "\r" not in body["text"] and "\r" not in body["blocks"][0]["text"]["text"]  # one-line fields
        for block in body["blocks"]:
            assert block["type"] in ("header", "section")
            assert block["text"]["type"] == "plain_text" or block["text"]["verbatim"] is True  # no bare @here parsed
    header = bodies[0]["blocks"][0]["text"]["text"]
    assert header == one_line(hostile.title, 150) and "\n" not in header  # plain_text: never parsed by Slack
    assert "&lt;!channel&gt;" in bodies[0]["text"]
    details = bodies[0]["blocks"][1]["text"]["text"].split("\n")  # an injected line break starts no line
    assert [line.split(" ", 1)[0] for line in details] == [
        MENTION,
        "*Severity:*",
        "*Services:*",
        "*Latest:*",
        LINK_MARKUP.split(" ")[0],
    ]


def test_a_long_body_is_split_at_line_ends_within_sections_code_blocks_closed_and_reopened() -> None:
    lines = [f"line {i} &amp; more" for i in range(400)]
    body = "```\n" + "\n".join(lines) + "\n```"

    pieces = chunks(body)

    assert len(pieces) > 2 and all(len(p) <= MAX_SECTION for p in pieces)
    assert all(p.count("```") == 2 for p in pieces)
    assert "\n".join(p.removeprefix("```\n").removesuffix("\n```") for p in pieces).strip("`\n") == "\n".join(lines)
    one_long_line = "x&amp;" * 2000
    pieces = chunks(one_long_line)
    assert "".join(pieces) == one_long_line and all(len(p) <= MAX_SECTION for p in pieces)
    assert all(p.count("&") == p.count(";") == p.count("&amp;") for p in pieces)  # whole entities only


async def test_degrading_drops_the_evidence_first_then_the_alerts_then_cuts_the_body(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    channel = api_channel(slack)
    for case in degradations(60_000):  # over the 40,000 characters a message's blocks are held to
        sent(await channel.send(delivery(), case.script, io))
        clock.advance(seconds=1)

        body = slack.requests[-1].body
        assert case.script.asked[-1] == (Markup.SLACK, case.detail)
        assert case.check("".join(b["text"]["text"] for b in body["blocks"][2:])), case
        assert (
            LINK_MARKUP in body["blocks"][1]["text"]["text"] and "*Severity:* SEV2" in body["blocks"][1]["text"]["text"]
        )


def _hypothesis_check(received: Recorded, title: str) -> None:
    body = received.body
    blocks = body["blocks"]
    assert len(blocks) <= 50 and len(body["text"]) <= 40_000
    assert sum(len(b["text"]["text"]) for b in blocks) <= 40_000
    for block in blocks:
        text = block["text"]["text"]
        assert 0 < len(text) <= (150 if block["type"] == "header" else 3_000)
    if "thread_ts" not in body:
        assert blocks[0]["text"]["text"] == (one_line(title, 150) or "Incident")
        assert "*Severity:* SEV2" in blocks[1]["text"]["text"] and LINK_MARKUP in blocks[1]["text"]["text"]
        assert escape(one_line(title, 40_000)) in body["text"]


async def _post_opened_and_a_note(title: str, body: str) -> None:
    clock = Clock()
    async with SlackFake(clock=clock) as slack, Http(timeout=10) as http:
        slack.add_channel(ALERTS, "alerts")
        channel = api_channel(slack)
        compose = composer(title=title, base=body[: len(body) // 2], alerts=body[len(body) // 2 :], evidence=body)
        thread = sent(await channel.send(delivery(), compose, Io(http, clock))).thread
        sent(await channel.send(delivery(Signal.NOTE, thread=thread), compose, Io(http, clock)))
        assert all(r.status == 200 for r in slack.requests) and len(slack.messages(ALERTS)) == 2
        for received in slack.received("/api/chat."):
            _hypothesis_check(received, title)


def repeated(unit: str, length: int) -> str:
    return (unit * (length // max(len(unit), 1) + 1))[:length]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    title=st.tuples(st.text(min_size=1, max_size=20), st.integers(min_value=0, max_value=5_000)).map(
        lambda drawn: repeated(*drawn)
    ),
    unit=st.text(min_size=1, max_size=80).map(escape),
    line_every=st.integers(min_value=0, max_value=3),
    length=st.integers(min_value=0, max_value=200_000),
)
@example(title="<!channel>" * 500, unit="&lt;", line_every=0, length=200_000)
@example(title="\U0001f525" * 5_000, unit="\U0001f525\U000829e4", line_every=1, length=200_000)
@example(title="x" * 5_000, unit="```\nlog line &amp; more", line_every=1, length=200_000)
def test_any_message_keeps_within_slacks_limits_with_its_title_severity_and_link(
    title: str, unit: str, line_every: int, length: int
) -> None:
    piece = unit + "\n" * line_every
    asyncio.run(_post_opened_and_a_note(title, repeated(piece, length)))


# ---- preview -----------------------------------------------------------------------------------


async def test_preview_shows_the_calls_and_sends_nothing(slack: SlackFake) -> None:
    channel = api_channel(slack)
    thread = {"channel": ALERTS, "ts": "1764000000.000100"}

    first = channel.preview(delivery(), composer())
    edit = channel.preview(delivery(Signal.ALERTS_CHANGED, thread=thread), composer())
    news = channel.preview(delivery(Signal.ACKNOWLEDGED, thread=thread), composer())

    assert [r["method"] for r in first["requests"]] == ["chat.postMessage"]
    assert first["requests"][0]["arguments"]["metadata"]["event_type"] == "receiver_incident"
    assert [(r["method"], r["arguments"]["ts"]) for r in edit["requests"]] == [("chat.update", thread["ts"])]
    assert [r["method"] for r in news["requests"]] == ["chat.postMessage", "chat.update"]
    assert news["requests"][0]["arguments"]["thread_ts"] == thread["ts"]
    assert TOKEN not in repr([first, edit, news])
    assert slack.requests == []


# ---- incoming webhooks -------------------------------------------------------------------------


def webhook_channel(slack: SlackFake, path: str, url: str = "", **overrides: Any) -> SlackWebhook:
    settings = SlackSettings(type="slack", webhook_url=url or f"{slack.url}{path}", **overrides)
    channel = build("team-slack", settings)
    assert isinstance(channel, SlackWebhook)
    return channel


async def test_an_incoming_webhook_posts_every_signal_anew_and_skips_edits(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    path = slack.add_webhook(ALERTS)
    channel = webhook_channel(slack, path, mention=MENTION)

    opened = sent(await channel.send(delivery(), composer(), io))
    skipped = await channel.send(delivery(Signal.ALERTS_CHANGED, thread=opened.thread), composer(), io)
    clock.advance(seconds=1)
    acked = sent(await channel.send(delivery(Signal.ACKNOWLEDGED, thread=opened.thread), composer(), io))

    assert skipped == Skipped("an incoming webhook cannot update a message")
    assert [r.path for r in slack.requests] == [path, path]
    first, second = (r.body for r in slack.requests)
    assert set(first) == {"text", "blocks", "unfurl_links", "unfurl_media"}  # no metadata, no thread
    assert first["blocks"][1]["text"]["text"].startswith(MENTION)  # the operator's mention on the first post only
    assert MENTION not in second["blocks"][1]["text"]["text"] and MENTION not in second["text"]
    assert len(slack.messages(ALERTS)) == 2 and acked.provider_id == ""
    assert channel.replay(delivery()) is Replay.NEVER and not channel.wants(Signal.ALERTS_CHANGED)
    assert channel.wants(Signal.OPENED) and channel.min_interval() == 1.0


async def test_an_incoming_webhooks_rate_key_and_messages_never_show_its_url(slack: SlackFake, io: Io) -> None:
    path = slack.add_webhook(ALERTS)
    channel = webhook_channel(slack, path)
    secret = path.rsplit("/", 1)[1]
    key = channel.rate_key(delivery())
    refused = webhook_channel(slack, "", url=closed_url(f"/services/T/B/{secret}"))
    invalid = webhook_channel(slack, "", url=f"http://127.0.0.1:99999/services/T/B/{secret}")
    nowhere = failed(await refused.send(delivery(), composer(), io))
    not_a_url = failed(await invalid.send(delivery(), composer(), io))
    elsewhere = failed(await channel.send(delivery(destination=OPS), composer(), io))

    assert key.startswith("webhook:") and secret not in key and key == channel.rate_key(delivery(destination=OPS))
    assert nowhere.reason is Reason.OTHER and secret not in nowhere.message
    assert not_a_url.message.startswith("incoming webhook: POST http://127.0.0.1:99999/…: InvalidUrlClientError")
    assert secret not in not_a_url.message
    assert (elsewhere.reason, elsewhere.permanent) == (Reason.CLIENT_ERROR, True)
    assert secret not in repr(channel.preview(delivery(), composer())) and "fakeWebhookSecret" not in repr(
        SlackSettings(type="slack", webhook_url=f"{slack.url}{path}")
    )


async def test_incoming_webhook_errors_are_classified(slack: SlackFake, io: Io, clock: Clock) -> None:
    live = slack.add_webhook(ALERTS)
    removed = slack.add_webhook(slack.add_channel(OPS, "ops").id)
    slack.disable_webhook(removed)
    archived = slack.add_webhook(slack.add_channel("C0OLD00001", "old", archived=True).id)
    no_channel = slack.add_webhook("C0GONE0001")
    team, bot, _ = live.removeprefix("/services/").split("/")

    async def outcome(path: str) -> Failed:
        return failed(await webhook_channel(slack, path).send(delivery(), composer(), io))

    results = {
        "no_service": await outcome(removed),
        "channel_is_archived": await outcome(archived),
        "channel_not_found": await outcome(no_channel),
        "invalid_token": await outcome(f"/services/{team}/{bot}/wrongsecret"),
    }
    for status, words in [(403, "action_prohibited"), (400, "invalid_payload"), (500, "rollup_error")]:
        slack.faults.add(Fault(status, words.encode(), path_prefix="/services"))
        results[words] = await outcome(live)
    slack.faults.add(Fault(429, b"rate_limited", headers=(("Retry-After", "5"),), path_prefix="/services"))
    results["rate_limited"] = await outcome(live)

    classes = {words: (r.reason, r.permanent, r.retry_after) for words, r in results.items()}
    assert classes == {
        "no_service": (Reason.AUTH_ERROR, True, None),
        "channel_is_archived": (Reason.CLIENT_ERROR, True, None),
        "channel_not_found": (Reason.CLIENT_ERROR, True, None),
        "invalid_token": (Reason.AUTH_ERROR, True, None),
        "action_prohibited": (Reason.AUTH_ERROR, True, None),
        "invalid_payload": (Reason.CLIENT_ERROR, True, None),
        "rollup_error": (Reason.SERVER_ERROR, False, None),
        "rate_limited": (Reason.RATE_LIMITED, False, 5.0),
    }
    assert all(words in r.message and "/services/" not in r.message for words, r in results.items())
    assert slack.messages(ALERTS) == []


# ---- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({}, "exactly one of token"),
        ({"token": TOKEN, "webhook_url": "https://hooks.slack.com/services/T/B/s", "channel": ALERTS}, "exactly one"),
        ({"token": TOKEN}, "channel (the channel's id) is required"),
        ({"webhook_url": "https://hooks.slack.com/services/T/B/s", "channel": ALERTS}, "must be left out"),
        ({"token": "", "channel": ALERTS}, "at least 1 character"),
        ({"webhook_url": "hooks.slack.com/services/T/B/s"}, "webhook_url must be an https:// URL"),
        ({"token": TOKEN, "channel": ALERTS, "colour": "red"}, "Extra inputs"),
        ({"token": TOKEN, "channel": "#alerts"}, "'#alerts' is not a Slack channel id"),
    ],
)
def test_settings_are_one_way_in(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        SlackSettings.model_validate({"type": "slack", **raw})


def test_settings_never_show_the_token() -> None:
    settings = SlackSettings(type="slack", token=TOKEN, channel=ALERTS)

    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    assert (settings.api_url, settings.mention) == ("https://slack.com/api", "")


async def test_the_http_edge_reads_a_long_answer_to_its_end(slack: SlackFake, io: Io) -> None:
    long = b'{"ok": true, "filler": "' + b"x" * 600_000 + b'"}'  # arrives in several chunks
    slack.faults.add(Fault(200, long, "application/json"))

    answer = await io.http.request("POST", f"{slack.url}/api/chat.postMessage", json={})

    assert answer.body == long


async def test_a_page_to_a_person_posts_in_the_app_s_direct_message_and_is_found_there_after_a_crash(
    slack: SlackFake, io: Io, clock: Clock
) -> None:
    slack.add_user("U0ALICE01")
    channel = api_channel(slack)
    page = delivery(Signal.PAGED, destination="U0ALICE01", event="paged@1")
    first = sent(await channel.send(page, composer(), io))
    dm = slack.dm("U0ALICE01")
    assert first.thread["channel"] == dm.id
    assert len(slack.messages(dm.id)) == 2  # the incident, and the page in its thread
    assert slack.messages(ALERTS) == []  # not in the team's channel

    again = sent(await channel.send(replace(page, resumed=True), composer(), io))

    assert "found the message posted before the crash" in again.note and again.thread == first.thread
    assert len(slack.messages(dm.id)) == 2  # looked up in the DM conversations.open named: not paged twice
    assert "/api/conversations.open" in [r.path for r in slack.requests[-4:]]
