"""The Slack fake behaves as Slack's documentation (cited in tests/fakes/slack.py) says, seen through plain aiohttp."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import Clock
from tests.fakes.slack import MAX_TEXT, TOKEN, SlackFake, decode_cursor, encode_cursor

ALERTS = "C0ALERTS01"
OPS = "C0OPS00001"
METADATA = {"event_type": "receiver_incident", "event_payload": {"incident": "INC-1", "key": "INC-1/opened/slack"}}


@pytest.fixture
async def slack(clock: Clock) -> AsyncIterator[SlackFake]:
    async with SlackFake(clock=clock) as fake:
        fake.add_channel(ALERTS, "alerts")
        fake.add_channel(OPS, "ops")
        yield fake


async def call(
    http: aiohttp.ClientSession, slack: SlackFake, method: str, token: str | None = TOKEN, **args: Any
) -> dict[str, Any]:
    """A Web API call with a JSON body, as the official SDKs make it; the answer must be HTTP 200."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.post(f"{slack.url}/api/{method}", data=json.dumps(args), headers=headers) as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def post(http: aiohttp.ClientSession, slack: SlackFake, channel: str = ALERTS, **args: Any) -> dict[str, Any]:
    return await call(http, slack, "chat.postMessage", channel=channel, **args)


async def raw_post(http: aiohttp.ClientSession, slack: SlackFake, text: str) -> tuple[int, dict[str, str], Any]:
    """A chat.postMessage to #alerts whatever its answer: status, headers, JSON body."""
    url = f"{slack.url}/api/chat.postMessage"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with http.post(url, json={"channel": ALERTS, "text": text}, headers=auth) as response:
        text = await response.text()
        return response.status, dict(response.headers), json.loads(text) if text else None


async def test_post_message_answers_the_message_with_a_ts_unique_and_increasing_per_channel(
    slack: SlackFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    answers = [await post(http, slack, text=f"incident {i}") for i in range(3)]  # one clock instant

    assert all(a["ok"] and a["channel"] == ALERTS for a in answers)
    stamps = [a["ts"] for a in answers]
    assert stamps == sorted(stamps, key=lambda ts: tuple(map(int, ts.split(".")))) and len(set(stamps)) == 3
    assert stamps[0].split(".")[0] == str(int(clock.now.timestamp()))
    assert answers[0]["message"]["text"] == "incident 0" and answers[0]["message"]["bot_id"]
    assert [m.text for m in slack.messages(ALERTS)] == ["incident 0", "incident 1", "incident 2"]


async def test_form_bodies_with_the_token_as_a_field_and_blocks_as_json_text(
    slack: SlackFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*SEV2* disk full"}}]
    form = {"token": TOKEN, "channel": "#alerts", "text": "SEV2 disk full", "blocks": json.dumps(blocks)}
    async with http.post(f"{slack.url}/api/chat.postMessage", data=form) as response:
        answer = await response.json()

    assert answer["ok"] and answer["channel"] == ALERTS
    assert answer["message"]["blocks"] == blocks
    (request,) = slack.received("/api/chat.postMessage")
    assert request.body["text"] == "SEV2 disk full" and request.at == clock.now and request.status == 200


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (None, "not_authed"),
        ("xoxb-nobody", "invalid_auth"),
        ("xoxb-gone", "account_inactive"),
        ("xoxb-rev", "token_revoked"),
    ],
)
async def test_authentication_errors_are_http_200_with_ok_false(
    slack: SlackFake, http: aiohttp.ClientSession, token: str | None, error: str
) -> None:
    slack.set_token("xoxb-gone", "inactive")
    slack.set_token("xoxb-rev", "revoked")

    answer = await post(http, slack, token=token, text="hello")

    assert answer == {"ok": False, "error": error}
    assert slack.messages(ALERTS) == []


async def test_channel_errors(slack: SlackFake, http: aiohttp.ClientSession) -> None:
    slack.add_channel("C0PRIVATE1", "private", member=False)
    slack.add_channel("C0OLD00001", "old", archived=True)

    assert (await post(http, slack, channel="C0NOWHERE1", text="x"))["error"] == "channel_not_found"
    assert (await post(http, slack, channel="C0PRIVATE1", text="x"))["error"] == "not_in_channel"
    assert (await post(http, slack, channel="C0OLD00001", text="x"))["error"] == "is_archived"
    assert (await call(http, slack, "chat.postMessage", text="x"))["error"] == "invalid_arguments"
    assert (await call(http, slack, "conversations.history", channel="C0PRIVATE1"))["error"] == "not_in_channel"


async def test_text_over_40000_characters_is_truncated_with_a_warning(
    slack: SlackFake, http: aiohttp.ClientSession
) -> None:
    answer = await post(http, slack, text="x" * (MAX_TEXT + 5))

    assert answer["ok"]
    assert len(answer["message"]["text"]) == MAX_TEXT
    assert answer["response_metadata"]["warnings"] == ["message_truncated"]
    assert "warning" not in await post(http, slack, channel=OPS, text="x" * MAX_TEXT)


async def test_blocks_are_checked_against_block_kit_limits(slack: SlackFake, http: aiohttp.ClientSession) -> None:
    divider = {"type": "divider"}
    fifty = await post(http, slack, text="t", blocks=[divider] * 50)
    too_many = await post(http, slack, channel=OPS, text="t", blocks=[divider] * 51)
    long_section = [{"type": "section", "text": {"type": "mrkdwn", "text": "a" * 3001}}]
    too_long = await call(http, slack, "chat.postMessage", channel="ops", text="t", blocks=long_section)
    no_type = await call(http, slack, "chat.postMessage", channel="ops", text="t", blocks=[{"text": "hi"}])

    assert fifty["ok"]
    assert too_many["error"] == "invalid_blocks"
    assert too_many["errors"] == ["no more than 50 items allowed [json-pointer:/blocks]"]
    assert too_long["error"] == "invalid_blocks" and "/blocks/0/text/text" in too_long["errors"][0]
    assert no_type["error"] == "invalid_blocks"
    assert (await post(http, slack, channel=OPS, blocks="not json"))["error"] == "invalid_blocks_format"
    assert (await post(http, slack, channel=OPS))["error"] == "no_text"
    assert (await post(http, slack, channel=OPS, attachments=[{"text": "a"}] * 101))["error"] == "too_many_attachments"


async def test_chat_post_message_is_rate_limited_per_channel_on_the_fakes_clock(
    slack: SlackFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    for i in range(3):  # the tolerated burst
        assert (await post(http, slack, text=f"burst {i}"))["ok"]

    status, headers, body = await raw_post(http, slack, "one too many")
    assert (status, headers["Retry-After"], body["error"]) == (429, "1", "ratelimited")

    assert (await post(http, slack, channel=OPS, text="another channel"))["ok"]
    clock.advance(seconds=1)
    assert (await post(http, slack, text="a second later"))["ok"]
    assert (await raw_post(http, slack, "the next one waits again"))[0] == 429
    assert [m.text for m in slack.messages(ALERTS)][-1] == "a second later"


async def test_chat_update_edits_the_bots_own_message_only(slack: SlackFake, http: aiohttp.ClientSession) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "firing"}}]
    ts = (await post(http, slack, text="SEV2 firing", blocks=blocks))["ts"]
    human = slack.add_human_message(ALERTS, "on it")

    updated = await call(http, slack, "chat.update", channel=ALERTS, ts=ts, text="SEV2 resolved")
    missing = await call(http, slack, "chat.update", channel=ALERTS, ts="1.000001", text="x")
    foreign = await call(http, slack, "chat.update", channel=ALERTS, ts=human, text="x")
    empty = await call(http, slack, "chat.update", channel=ALERTS, ts=ts)

    assert updated["ok"] and updated["ts"] == ts and updated["text"] == "SEV2 resolved"
    assert updated["message"]["blocks"] == blocks  # blocks left out are kept
    assert "edited" in updated["message"]
    assert missing["error"] == "message_not_found"
    assert foreign["error"] == "cant_update_message"
    assert empty["error"] == "no_text"
    history = await call(http, slack, "conversations.history", channel=ALERTS)
    assert [m["text"] for m in history["messages"]] == ["on it", "SEV2 resolved"]


async def test_history_returns_metadata_only_when_asked(slack: SlackFake, http: aiohttp.ClientSession) -> None:
    metadata = {"event_type": "incident_opened", "event_payload": {"incident": "inc-42", "severity": "SEV2"}}
    await post(http, slack, text="SEV2", metadata=metadata)

    plain = await call(http, slack, "conversations.history", channel=ALERTS)
    full = await call(http, slack, "conversations.history", channel=ALERTS, include_all_metadata=True)

    assert "metadata" not in plain["messages"][0]
    assert full["messages"][0]["metadata"] == metadata
    assert (await post(http, slack, text="x", metadata={"event_type": "x"}))["error"] == "invalid_metadata_schema"
    assert (await post(http, slack, text="x", metadata="{nope"))["error"] == "invalid_metadata_format"


async def test_history_pages_newest_first_through_cursors(
    slack: SlackFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    for i in range(5):
        await post(http, slack, text=f"m{i}")
        clock.advance(seconds=1)

    seen: list[str] = []
    cursor = ""
    for _ in range(10):  # bounded: 3 pages expected
        page = await call(http, slack, "conversations.history", channel=ALERTS, limit=2, cursor=cursor)
        seen += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] == bool(cursor)
        if not cursor:
            break

    assert seen == ["m4", "m3", "m2", "m1", "m0"]
    bad = await call(http, slack, "conversations.history", channel=ALERTS, cursor="bm90IGEgY3Vyc29y")
    assert bad["error"] == "invalid_cursor"
    assert decode_cursor(encode_cursor("1512085861.000547")) == "1512085861.000547"


async def test_threads_replies_stay_out_of_history_and_come_back_through_replies(
    slack: SlackFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    parent = (await post(http, slack, text="SEV1 opened"))["ts"]
    replies = [(await post(http, slack, text=f"update {i}", thread_ts=parent))["ts"] for i in range(2)]

    history = await call(http, slack, "conversations.history", channel=ALERTS)
    thread = await call(http, slack, "conversations.replies", channel=ALERTS, ts=parent)

    assert [m["text"] for m in history["messages"]] == ["SEV1 opened"]
    assert history["messages"][0]["reply_count"] == 2 and history["messages"][0]["latest_reply"] == replies[-1]
    assert [m["text"] for m in thread["messages"]] == ["SEV1 opened", "update 0", "update 1"]
    assert all(m["thread_ts"] == parent for m in thread["messages"])
    assert (await call(http, slack, "conversations.replies", channel=ALERTS, ts="1.000001"))["error"] == (
        "thread_not_found"
    )
    clock.advance(seconds=5)
    assert (await post(http, slack, text="x", thread_ts="1.000001"))["error"] == "thread_not_found"


async def test_history_by_get_with_query_arguments(slack: SlackFake, http: aiohttp.ClientSession) -> None:
    await post(http, slack, text="hello")
    query = {"channel": ALERTS, "limit": "1"}
    async with http.get(
        f"{slack.url}/api/conversations.history", params=query, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        answer = await response.json()

    assert answer["ok"] and [m["text"] for m in answer["messages"]] == ["hello"]


async def test_body_encodings(slack: SlackFake, http: aiohttp.ClientSession) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{slack.url}/api/chat.postMessage"
    no_charset = {**auth, "Content-Type": "application/json"}
    async with http.post(url, data=json.dumps({"channel": ALERTS, "text": "x"}), headers=no_charset) as response:
        assert (await response.json())["response_metadata"]["warnings"] == ["missing_charset"]
    async with http.post(url, data=b"channel=x", headers={**auth, "Content-Type": "text/csv"}) as response:
        assert (await response.json())["error"] == "invalid_post_type"
    async with http.post(url, data=b"{not json", headers={**auth, "Content-Type": "application/json"}) as response:
        assert (await response.json())["error"] == "invalid_json"
    assert (await call(http, slack, "chat.nothing"))["error"] == "unknown_method"


async def test_scripted_faults_come_first_in_order_and_then_the_fake_resumes(
    slack: SlackFake, http: aiohttp.ClientSession
) -> None:
    slack.rate_limit(times=2, retry_after=3, method="chat.postMessage")
    slack.server_error(status=503)
    slack.api_error("internal_error")
    statuses = []
    for _ in range(3):
        status, headers, _ = await raw_post(http, slack, "x")
        statuses.append((status, headers.get("Retry-After")))

    assert statuses == [(429, "3"), (429, "3"), (503, None)]
    assert (await post(http, slack, text="x")) == {"ok": False, "error": "internal_error"}
    assert (await post(http, slack, text="at last"))["ok"]
    assert [r.faulted for r in slack.requests] == [True, True, True, True, False]
    assert [m.text for m in slack.messages(ALERTS)] == ["at last"]


async def test_wait_for_requests_is_bounded(slack: SlackFake, http: aiohttp.ClientSession) -> None:
    await post(http, slack, text="one")
    assert len(await slack.wait_for_requests(1, within=1)) == 1
    with pytest.raises(TimeoutError):
        await slack.wait_for_requests(2, within=0.05)


# ---- incoming webhooks -----------------------------------------------------------------------


async def hook(http: aiohttp.ClientSession, slack: SlackFake, path: str, **kwargs: Any) -> tuple[int, str]:
    async with http.post(f"{slack.url}{path}", **kwargs) as response:
        return response.status, await response.text()


async def test_incoming_webhook_posts_into_its_channel_and_answers_plain_ok(
    slack: SlackFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    path = slack.add_webhook(ALERTS)

    assert path.startswith("/services/T")
    assert await hook(http, slack, path, json={"text": "SEV3 from a webhook"}) == (200, "ok")
    clock.advance(seconds=1)
    form = {"payload": json.dumps({"text": "legacy form"})}
    assert await hook(http, slack, path, data=form) == (200, "ok")
    assert [m.text for m in slack.messages(ALERTS)] == ["SEV3 from a webhook", "legacy form"]


async def test_incoming_webhook_errors_are_http_statuses_with_a_plain_code(
    slack: SlackFake, http: aiohttp.ClientSession, clock: Clock
) -> None:
    path = slack.add_webhook(ALERTS)
    team, bot, _ = path.removeprefix("/services/").split("/")
    archived = slack.add_channel("C0OLD00001", "old", archived=True)
    old = slack.add_webhook(archived.id)
    gone = slack.add_webhook(OPS)
    slack.disable_webhook(gone)

    headers = {"Content-Type": "application/json"}
    assert await hook(http, slack, path, data=b"{oops", headers=headers) == (400, "invalid_payload")
    assert await hook(http, slack, path, json={"username": "x"}) == (400, "no_text")
    assert await hook(http, slack, path, json={"text": "x", "attachments": [{}] * 101}) == (400, "too_many_attachments")
    assert await hook(http, slack, f"/services/{team}/{bot}/wrongsecret", json={"text": "x"}) == (403, "invalid_token")
    assert await hook(http, slack, "/services/T0NONE/B0NONE/x", json={"text": "x"}) == (404, "no_service")
    assert await hook(http, slack, gone, json={"text": "x"}) == (404, "no_service")
    assert await hook(http, slack, old, json={"text": "x"}) == (410, "channel_is_archived")
    assert slack.messages(ALERTS) == []


async def test_incoming_webhook_rate_limit(slack: SlackFake, http: aiohttp.ClientSession, clock: Clock) -> None:
    path = slack.add_webhook(ALERTS)
    for _ in range(3):
        assert (await hook(http, slack, path, json={"text": "x"}))[0] == 200

    async with http.post(f"{slack.url}{path}", json={"text": "x"}) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "1"

    clock.advance(seconds=1)
    assert (await hook(http, slack, path, json={"text": "x"}))[0] == 200


async def test_a_held_post_is_in_the_channel_before_its_answer_leaves(
    slack: SlackFake, http: aiohttp.ClientSession
) -> None:
    held = slack.hold("/api/chat.postMessage")
    posting = asyncio.create_task(post(http, slack, text="incident", metadata=METADATA))
    [request] = await held.wait_for_arrivals(1)
    assert request.held and request.status == 200 and slack.received("/api/chat.postMessage") == [request]
    [message] = slack.messages(ALERTS)  # Slack posted it; the answer is still in flight
    assert message.metadata == METADATA and not posting.done()
    history = await call(http, slack, "conversations.history", channel=ALERTS, include_all_metadata=True)
    assert [m["metadata"] for m in history["messages"]] == [METADATA]  # other calls are answered meanwhile
    held.release()
    answer = await asyncio.wait_for(posting, 10)
    assert answer["ok"] and answer["ts"] == message.ts
    assert (await post(http, slack, text="after the release"))["ok"]
    assert [r.held for r in slack.received("/api/chat.postMessage")] == [True, False]
