"""The Teams channel against the fake Workflows webhook (tests/fakes/teams.py), over real HTTP on loopback."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pydantic
import pytest

from receiver.incidents.lifecycle import Signal
from receiver.notify.channel import Io, Replay
from receiver.notify.channels.teams import MAX_BYTES, TYPE, TeamsChannel, TeamsSettings, build, escape, lines
from receiver.notify.content import Detail, Markup
from receiver.notify.model import Failed, Reason, Sent
from tests.channel_support import HOSTILE, LINK, Script, closed_url, degradations, delivery
from tests.conftest import Clock
from tests.fakes.server import Fault
from tests.fakes.teams import ADAPTIVE, TeamsFake, error_body

SPECIAL = "\\`*_~[](){}<>#|!&"


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[TeamsFake]:
    async with TeamsFake(clock=clock) as server:
        yield server


def channel(url: str) -> TeamsChannel:
    return build("teams", TeamsSettings(type="teams", webhook_url=url))


def flow(fake: TeamsFake, name: str = "Incidents") -> TeamsChannel:
    return channel(fake.url + fake.add_flow(name))


def card_of(fake: TeamsFake) -> dict[str, Any]:
    (attachment,) = fake.requests[-1].body["attachments"]
    assert (attachment["contentType"], attachment["contentUrl"]) == (ADAPTIVE, None)
    content: dict[str, Any] = attachment["content"]
    return content


def unescaped(text: str) -> list[str]:
    """The markdown-special characters of ``text`` not preceded by a backslash."""
    found, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in SPECIAL:
            found.append(text[i])
        i += 1
    return found


async def test_a_notification_is_one_adaptive_card_posted_to_the_flows_channel(fake: TeamsFake, io: Io) -> None:
    script = Script()

    result = await flow(fake).send(delivery(), script, io)

    assert result == Sent()
    assert len(fake.posted("Incidents")) == 1 and fake.requests[-1].status == 202
    assert fake.requests[-1].body["type"] == "message"
    card = card_of(fake)
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, event, facts, body = card["body"]
    assert (title["type"], title["weight"], title["wrap"]) == ("TextBlock", "Bolder", True)
    assert title["text"] == escape(script.title) and title["text"].startswith(r"\[SEV2\] INC\-20261122\-0001: ")
    assert (event["type"], event["text"]) == ("TextBlock", r"opened line one Bcc: attacker@evil\.example line two")
    assert facts["type"] == "FactSet"
    assert [(f["title"], f["value"]) for f in facts["facts"]] == [
        ("Severity", "SEV2"),
        ("Status", "triggered"),
        ("Services", escape(f"shop, {HOSTILE}")),
    ]
    assert (body["type"], body["text"], body["wrap"]) == ("TextBlock", script.text, True)
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open incident", "url": LINK}]
    assert script.asked[0] == (Markup.MARKDOWN, Detail.FULL)


async def test_the_body_keeps_its_lines_a_blank_line_apart_but_list_items(fake: TeamsFake, io: Io) -> None:
    """A TextBlock runs single newlines together: each line of the templates' text must come out as one."""
    text = "\\*Firing:\\* 2 alerts\n- KubePodCrashLooping cart\n- KubePodCrashLooping web\n\n\nRunbook: below\nlast"

    await flow(fake).send(delivery(), Script(text=text), io)

    body = card_of(fake)["body"][-1]["text"]
    assert body == (
        "\\*Firing:\\* 2 alerts\n\n- KubePodCrashLooping cart\n- KubePodCrashLooping web\n\nRunbook: below\n\nlast"
    )


@pytest.mark.parametrize(
    ("markdown", "shown"),
    [
        ("", ""),
        ("one", "one"),
        ("one\ntwo", "one\n\ntwo"),
        ("1. first\n2. second\nafter", "1. first\n2. second\n\nafter"),
        ("  - nested\n- top", "  - nested\n- top"),
        ("\\- not a list\n\\- either", "\\- not a list\n\n\\- either"),
    ],
)
def test_lines_as_a_textblock_shows_them(markdown: str, shown: str) -> None:
    assert lines(markdown) == shown


async def test_hostile_text_cannot_format_link_mention_or_expand_in_the_card(fake: TeamsFake, io: Io) -> None:
    script = Script(status=HOSTILE, severity="- SEV1", event=f"1. {HOSTILE}\r\n- item")

    assert await flow(fake).send(delivery(), script, io) == Sent()

    title, event, facts, _ = card_of(fake)["body"]
    lines = [title["text"], event["text"], *(f["value"] for f in facts["facts"])]
    assert [unescaped(line) for line in lines] == [[]] * len(lines)
    assert all("\n" not in line and "\r" not in line for line in lines)
    assert r"\{\{DATE\(" in title["text"] and r"\<at\>everyone\</at\>" in title["text"]
    assert r"\[click\]\(https://evil\.example\)" in title["text"]
    assert event["text"].startswith(r"1\. ") and facts["facts"][0]["value"] == r"\- SEV1"


@pytest.mark.parametrize(
    ("plain", "escaped"),
    [
        ("*bold* _it_ ~x~ `code`", r"\*bold\* \_it\_ \~x\~ \`code\`"),
        ("a & b < c > d", r"a \& b \< c \> d"),
        ("back\\slash", r"back\\slash"),
        ("- not a list", r"\- not a list"),
        ("+ nor this", r"\+ nor this"),
        ("12. nor this", r"12\. nor this"),
        ("INC-1 v1.2 ok", r"INC\-1 v1\.2 ok"),
        ("# no heading | no table!", r"\# no heading \| no table\!"),
    ],
)
def test_escaping(plain: str, escaped: str) -> None:
    assert escape(plain) == escaped


async def test_without_a_link_there_is_no_action(fake: TeamsFake, io: Io) -> None:
    assert await flow(fake).send(delivery(), Script(link=""), io) == Sent()

    assert "actions" not in card_of(fake)


@pytest.mark.parametrize("signal", list(Signal))
def test_every_signal_but_alerts_changed_posts(signal: Signal) -> None:
    assert channel("https://example.invalid/x").wants(signal) is (signal is not Signal.ALERTS_CHANGED)


async def test_evidence_goes_first_then_alerts_then_the_body_is_cut_so_teams_never_answers_413(
    fake: TeamsFake, io: Io
) -> None:
    teams = flow(fake)
    for case in degradations(100_000):
        assert await teams.send(delivery(), case.script, io) == Sent()

        request = fake.requests[-1]
        assert request.status == 202 and len(request.raw) <= MAX_BYTES
        assert case.script.asked[-1] == (Markup.MARKDOWN, case.detail)
        card = card_of(fake)
        assert case.check(card["body"][-1]["text"])
        assert card["body"][0]["text"] == escape(case.script.title) and card["body"][2]["facts"][0]["value"] == "SEV2"
        assert card["actions"][0]["url"] == LINK
    assert len(fake.posted()) == 3


async def test_throttled_is_rate_limited_with_its_retry_after(fake: TeamsFake, io: Io) -> None:
    teams = flow(fake)
    for _ in range(4):
        assert await teams.send(delivery(), Script(), io) == Sent()

    fifth = await teams.send(delivery(), Script(), io)
    fake.throttle(retry_after=7)
    scripted = await teams.send(delivery(), Script(), io)

    assert isinstance(fifth, Failed) and (fifth.reason, fifth.retry_after, fifth.permanent) == (
        Reason.RATE_LIMITED, 1.0, False
    )  # fmt: skip
    assert isinstance(scripted, Failed) and (scripted.reason, scripted.retry_after) == (Reason.RATE_LIMITED, 7.0)
    assert teams.min_interval() == 0.25


@pytest.mark.parametrize(
    ("fault", "reason", "permanent", "words"),
    [
        (Fault.json(400, error_body("BadRequest", "content.body")), Reason.CLIENT_ERROR, True, "BadRequest: content"),
        (Fault.json(413, error_body("RequestEntityTooLarge", "big")), Reason.CLIENT_ERROR, True, "TooLarge: big"),
        (Fault.json(403, error_body("Forbidden", "no")), Reason.AUTH_ERROR, True, "flow refused the request"),
        (Fault.json(500, error_body("InternalServerError", "x")), Reason.SERVER_ERROR, False, "InternalServerError"),
        (Fault.status_only(502), Reason.SERVER_ERROR, False, "HTTP 502"),
        (Fault.status_only(504), Reason.SERVER_ERROR, False, "HTTP 504"),
    ],
)
async def test_statuses(fake: TeamsFake, io: Io, fault: Fault, reason: Reason, permanent: bool, words: str) -> None:
    fake.faults.add(fault)

    result = await flow(fake).send(delivery(), Script(), io)

    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (reason, permanent) and words in result.message
    assert fake.posted() == []


@pytest.mark.parametrize("status", [200, 202])
async def test_accepted(fake: TeamsFake, io: Io, status: int) -> None:
    fake.faults.add(Fault.status_only(status))

    assert await flow(fake).send(delivery(), Script(), io) == Sent()


async def test_a_url_no_longer_good_is_an_authentication_error_that_never_shows_it(fake: TeamsFake, io: Io) -> None:
    good = fake.url + fake.add_flow()
    sig = good.rsplit("sig=", 1)[1]
    forged = re.sub(r"sig=.*", "sig=forged", good)
    deleted = good.replace(good.split("/")[4], "0" * 32)

    results = [await channel(url).send(delivery(), Script(), io) for url in (forged, deleted)]

    assert [r.status for r in fake.requests] == [401, 404]
    for result, words in zip(results, ("signature", "not found"), strict=True):
        assert isinstance(result, Failed) and (result.reason, result.permanent) == (Reason.AUTH_ERROR, True)
        assert words in result.message and "sig" not in result.message.replace("signature", "")
        assert sig not in result.message and "workflows" not in result.message


async def test_no_answer_is_a_temporary_failure_without_the_url(io: Io) -> None:
    url = closed_url("/workflows/abc/triggers/manual/paths/invoke?sig=SECRET")

    result = await channel(url).send(delivery(), Script(), io)

    assert isinstance(result, Failed) and (result.reason, result.permanent) == (Reason.OTHER, False)
    assert "SECRET" not in result.message and "workflows" not in result.message


async def test_a_destination_is_refused_without_sending(fake: TeamsFake, io: Io) -> None:
    result = await flow(fake).send(delivery(destination="https://other.example/x"), Script(), io)

    assert isinstance(result, Failed) and result.permanent and fake.requests == []


def test_never_replayed_and_the_url_stays_hidden() -> None:
    url = "https://prod.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=SECRET"
    teams = channel(url)

    assert teams.replay(delivery()) is Replay.NEVER
    assert "SECRET" not in repr(teams) and "SECRET" not in teams.rate_key(delivery())
    assert teams.rate_key(delivery()) != channel(url + "2").rate_key(delivery())
    assert "SECRET" not in str(teams.preview(delivery(), Script()))
    assert teams.preview(delivery(), Script())["type"] == "message"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "https://", "https:///path?sig=SECRET"])
def test_the_webhook_url_is_validated_without_repeating_it(url: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        TYPE.settings.model_validate({"type": "teams", "webhook_url": url})

    (error,) = caught.value.errors()
    assert "http(s) URL" in error["msg"] and url not in error["msg"]
