"""Signed links in notifications: in every internal channel's message, never in the external audience's,
signed by the engine for the person paged or the channel's target, with the engine's clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import cast

import orjson
import pytest

from receiver.alerts.dedup import DedupPolicy
from receiver.engine import stories
from receiver.engine.notifier import Notifier
from receiver.engine.processor import Processor
from receiver.incidents.book import Book, IncidentPolicy
from receiver.incidents.lifecycle import IncidentStatus, Signal
from receiver.notify.cadence import Cadence
from receiver.notify.channel import Channel
from receiver.notify.composer import RouteComposer
from receiver.notify.content import Audience, Compose, Detail, Markup, Message
from receiver.notify.http import Http
from receiver.notify.model import Delivery, Target, paged_person
from receiver.notify.planning import Channels, Planner
from receiver.notify.routing import Route
from receiver.notify.story import ActionLink, Story
from receiver.notify.templates import Templates
from receiver.oncall.links import Action, Claim, Keyring, Signer
from receiver.store.sqlite import SQLiteStore
from tests.channel_support import closed_url, delivery
from tests.corpus import alert, payload
from tests.notify_support import T0, story
from tests.test_channel_contract import EVERY
from tests.test_notifier import Now, Scripted

ACK = ActionLink("ack", "Acknowledge", "https://receiver.example/links/AAAA.ack-token")
RESOLVE = ActionLink("resolve", "Resolve", "https://receiver.example/links/BBBB.resolve-token")
KEYRING = Keyring((b"k" * 32,))
SIGNER = Signer(KEYRING, timedelta(hours=24), "https://receiver.example")


def composing(told: Story, audience: Audience) -> Compose:
    templates = Templates()
    return lambda markup, detail: templates.compose(told, audience, markup, detail)


@pytest.mark.parametrize(
    ("markup", "shown"),
    [
        (Markup.PLAIN, ["Acknowledge: https://receiver.example/links/AAAA.ack-token"]),
        (Markup.SLACK, ["<https://receiver.example/links/AAAA.ack-token|Acknowledge>"]),
        (Markup.HTML, ['<a href="https://receiver.example/links/AAAA.ack-token">Acknowledge</a>']),
        (Markup.MARKDOWN, ["[Acknowledge](https://receiver.example/links/AAAA.ack-token)"]),
    ],
)
@pytest.mark.parametrize("signal", [Signal.OPENED, Signal.ESCALATED, Signal.REMINDER])
def test_internal_messages_carry_the_links_in_their_markup(markup: Markup, shown: list[str], signal: Signal) -> None:
    message = composing(story(signal, actions=(ACK, RESOLVE)), "internal")(markup, Detail.NO_ALERTS)
    for text in shown:
        assert text in message.body
    assert "Resolve" in message.body and RESOLVE.url in message.body
    assert message.actions == (ACK, RESOLVE)


@pytest.mark.parametrize("signal", [Signal.OPENED, Signal.ESCALATED, Signal.STATUS_UPDATE, Signal.RESOLVED])
@pytest.mark.parametrize("markup", list(Markup))
def test_the_external_audience_never_gets_links(signal: Signal, markup: Markup) -> None:
    message = composing(story(signal, actions=(ACK, RESOLVE)), "external")(markup, Detail.FULL)
    assert message.actions == ()
    assert "links/" not in message.body and "Acknowledge" not in message.body and "Resolve:" not in message.body


def test_without_links_the_internal_message_is_as_before() -> None:
    message = composing(story(), "internal")(Markup.PLAIN, Detail.FULL)
    assert message.actions == () and "/links/" not in message.body


def test_a_custom_template_may_place_the_links_itself() -> None:
    custom = Templates(
        {"internal": {"declared": "{% for a in incident.actions %}[{{ a.label }}]({{ a.url }}) {% endfor %}"}}
    )
    message = custom.compose(story(actions=(ACK,)), "internal", Markup.PLAIN, Detail.FULL)
    assert message.body == f"[Acknowledge]({ACK.url})"


@pytest.mark.parametrize("kind", list(EVERY))
def test_every_internal_channel_sends_the_links_and_the_status_page_none(kind: str) -> None:
    channel = EVERY[kind](closed_url())
    told = story(Signal.OPENED, actions=(ACK, RESOLVE), severity="SEV1", services=("shop",))
    sent = json.dumps(channel.preview(delivery(Signal.OPENED), composing(told, channel.audience)))
    if channel.audience == "external":
        assert kind == "statuspage" and "links/" not in sent and "Acknowledge" not in sent
    else:
        assert ACK.url in sent and RESOLVE.url in sent, sent


@pytest.mark.parametrize(
    ("route", "person"), [("person:alice", "alice"), ("person:", None), ("databases", None), ("", None)]
)
def test_a_page_to_a_person_is_marked_by_its_route(route: str, person: str | None) -> None:
    assert paged_person(route) == person


# ---- signed at the edge, by the engine ------------------------------------------------------------


class Rendering(RouteComposer):
    """The shipped templates, remembering the plain full message of every delivery."""

    def __init__(self) -> None:
        super().__init__({})
        self.messages: list[Message] = []

    def compose(self, story: Story, audience: Audience, markup: Markup, detail: Detail, route: str) -> Message:
        message = super().compose(story, audience, markup, detail, route)
        self.messages.append(message)
        return message


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "r.db")
    await opened.open()
    yield opened
    await opened.close()


async def incident(store: SQLiteStore, clock: Now, channels: list[Scripted]) -> Processor:
    targets = tuple(Target(c.name) for c in channels)
    listening = Channels({c.name: c.kind for c in channels}, lambda _, s: s is not Signal.ALERTS_CHANGED)
    planner = Planner([Route("all", (), targets)], listening, Cadence())
    processor = Processor(
        store,
        policy=DedupPolicy(),
        report=lambda *_: None,
        book=Book(IncidentPolicy()),
        clock=clock,
        planner=planner,
    )
    body = payload(
        [alert("KubePodCrashLooping", pod="web-1", namespace="shop")], starts_at=clock() - timedelta(minutes=5)
    )
    await store.accept(orjson.dumps(body), clock())
    await processor.drain()
    return processor


async def test_the_engine_signs_links_for_internal_channels_with_its_clock(store: SQLiteStore) -> None:
    clock = Now()
    internal, external = Scripted("slack"), Scripted("statuspage", audience="external")
    await incident(store, clock, [internal, external])
    composer = Rendering()
    notifier = Notifier(
        store,
        {c.name: cast(Channel, c) for c in (internal, external)},
        composer,
        Http(),
        clock,
        lambda _: None,
        signer=SIGNER,
    )
    clock.at += timedelta(minutes=3)
    await notifier.drain()
    assert [d.target.channel for d in internal.asked + external.asked] == ["slack", "statuspage"]
    by_audience = {m.audience: m for m in composer.messages}
    assert by_audience["external"].actions == ()
    ack, resolve = by_audience["internal"].actions
    assert (ack.label, resolve.label) == ("Acknowledge", "Resolve")
    claim = KEYRING.verify(ack.url.removeprefix("https://receiver.example/links/"), clock.at)
    assert isinstance(claim, Claim)
    assert (claim.action, claim.actor, claim.expires) == (Action.ACKNOWLEDGE, "slack", clock.at + timedelta(hours=24))
    assert claim.incident == internal.asked[0].incident and ack.url in by_audience["internal"].body


async def test_a_story_offers_resolve_only_once_acknowledged_for_the_person_paged(store: SQLiteStore) -> None:
    clock = Now()
    channel = Scripted("slack")
    processor = await incident(store, clock, [channel])
    [row] = await store.notifications()
    paged = Delivery(
        1,
        row.key,
        row.incident,
        Signal.OPENED,
        Target("slack", "C0789DB"),
        "slack",
        "",
        "receiver",
        T0,
        T0,
        1,
        route="person:alice",
    )
    told = await stories.read(store, paged, "", signed=(SIGNER, clock.at))
    assert [a.action for a in told.actions] == ["ack", "resolve"]
    claims = [KEYRING.verify(a.url.rsplit("/", 1)[1], clock.at) for a in told.actions]
    assert {c.actor for c in claims if isinstance(c, Claim)} == {"alice"}
    await processor.acknowledge(row.incident, "bob", "looking")
    told = await stories.read(store, replace(paged, route=""), "", signed=(SIGNER, clock.at))
    assert [a.action for a in told.actions] == ["resolve"]
    resolved = KEYRING.verify(told.actions[0].url.rsplit("/", 1)[1], clock.at)
    assert isinstance(resolved, Claim) and resolved.actor == "slack:C0789DB"
    await processor.resolve(row.incident, "bob", "fixed")
    assert (await stories.read(store, paged, "", signed=(SIGNER, clock.at))).actions == ()
    assert (await stories.read(store, paged, "")).actions == ()
    assert IncidentStatus.RESOLVED.value == (await stories.read(store, paged, "")).status


def test_pagerduty_lists_the_links_and_teams_shows_them_as_buttons() -> None:
    told = story(Signal.OPENED, actions=(ACK, RESOLVE))
    paged = EVERY["pagerduty"](closed_url()).preview(delivery(Signal.OPENED), composing(told, "internal"))
    assert paged["links"] == [
        {"href": told.link, "text": "Incident INC-20261122-0001"},
        {"href": ACK.url, "text": "Acknowledge INC-20261122-0001"},
        {"href": RESOLVE.url, "text": "Resolve INC-20261122-0001"},
    ]
    card = EVERY["teams"](closed_url()).preview(delivery(Signal.OPENED), composing(told, "internal"))
    actions = card["attachments"][0]["content"]["actions"]
    assert [(a["title"], a["url"]) for a in actions] == [
        ("Open incident", told.link),
        ("Acknowledge", ACK.url),
        ("Resolve", RESOLVE.url),
    ]
