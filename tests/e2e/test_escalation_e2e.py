"""Escalation end to end: a real Alertmanager, a real ``receiver serve`` (web and engine processes), the fakes.

Alice is on call in ``primary``, bob in ``secondary``; the policy pages primary, waits a few seconds, pages
secondary, waits again, and ends. Pages reach people in the app's direct message with them in the fake
Slack, which records when each arrived.

- Nobody acknowledges: alice is paged at once, bob only once the wait has passed (the step fires within
  one engine cycle of the deadline the first step's time sets, and nothing reaches his direct message
  before it), and the timeline tells each step and the end.
- The engine is SIGKILLed during the wait for bob, then the whole daemon during the wait for the end:
  each comes back and fires what was due exactly once, on time (allowing for the restart).
- A signed link taken from alice's page, a Slack button she clicks and a PagerDuty webhook each
  acknowledge as alice and stop the escalation: a second incident opened afterwards has its own second
  step fired, later than the first's would have been, while the first pages nobody more. Forged and
  expired requests are refused and change nothing; nothing is sent back to PagerDuty for its own
  acknowledgement.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from receiver.clock import utc_now
from receiver.oncall.links import Action, Claim, Keyring
from tests.e2e.harness import Alertmanager, Receiver, alertmanager_config, eventually, process_gone
from tests.e2e.test_interactions_e2e import PAGERDUTY_SECRET, SLACK_SECRET, _async, post
from tests.e2e.test_notifications_e2e import (
    BILLING_CRASH,
    SHOP_CRASH,
    TOKEN,
    Providers,
    actions,
    api,
    fire,
    incident_of,
    providers,
    settled,
    states,
)
from tests.fakes.pagerduty import signed_webhook, user_agent, webhook_event
from tests.fakes.slack import Message, signed_interaction

__all__ = ["providers"]  # the fixture, used by name
ALICE, BOB = "U0E2EALICE", "U0E2EBOB"
ALICE_PD = "PE2EALICE"
LINK_SECRET = "e2e-link-secret-0123456789abcdefghij"
CYCLE = timedelta(seconds=1)
"""How late a step may fire after its deadline: one engine cycle (the loop sleeps until the deadline)."""
SENT = timedelta(seconds=5)
"""How soon a fired step's page reaches the fake Slack (the outbox sends it at once; room for a busy machine)."""


@dataclass(frozen=True)
class Ladder:
    """The test's policy, each of its two steps waiting ``seconds``, and the timeline lines it writes."""

    seconds: int

    @property
    def wait(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def lines(self) -> list[str]:
        """Step 1 (alice), step 2 (bob), the end."""
        wait = f"{self.seconds}s"
        return [
            f"default step 1/2: paged alice (schedule:primary) by slack; next step in {wait} unless acknowledged",
            f"no acknowledgement in {wait}: default step 2/2: paged bob (schedule:secondary) by slack;"
            f" last step: the escalation ends in {wait} unless acknowledged",
            f"no acknowledgement in {wait}: escalation default ended: nobody acknowledged after 1 round",
        ]


SHORT = Ladder(3)
"""Short waits, so the ladder runs in seconds."""
ROOMY = Ladder(6)
"""Room within a wait for a kill and a restart, or for acknowledging, on a busy machine."""
TOO_SLOW = "the wait was over before the test acknowledged: the machine is too busy for this test"


def settings(providers: Providers, url: str, ladder: Ladder) -> dict[str, Any]:
    """Incidents to the team's Slack channel and PagerDuty; alice then bob paged in Slack; links signed."""
    channels = providers.channels()
    channels["slack"] |= {"signing_secret": "env:SLACK_SIGNING_SECRET"}
    channels["pagerduty"] |= {"webhook_secret": "env:PAGERDUTY_WEBHOOK_SECRET"}
    del channels["email"]
    wait = f"{ladder.seconds}s"
    return {
        "log_level": "debug",
        "engine": {"nice": 0},  # deadlines are timed: the engine is not to yield to other tests' processes
        "api": {"token": TOKEN},
        "notify": {
            "external_url": url,
            "channels": channels,
            "routes": [{"channels": ["slack", "pagerduty"]}],
            "retry": {"first": "200ms"},
        },
        "oncall": {
            "people": {
                "alice": {"timezone": "Europe/Berlin", "slack_user": ALICE, "pagerduty_user": ALICE_PD},
                "bob": {"timezone": "America/New_York", "slack_user": BOB},
            },
            "schedules": {"primary": alone("alice"), "secondary": alone("bob")},
            "policies": {
                "default": {
                    "steps": [
                        {"notify": ["schedule:primary"], "wait": wait},
                        {"notify": ["schedule:secondary"], "wait": wait},
                    ]
                }
            },
            "links": {"secret": "env:RECEIVER_LINK_SECRET", "ttl": "1h"},
        },
    }


def alone(person: str) -> dict[str, Any]:
    """A schedule ``person`` is always on call in (one participant, from long before any clock the suite runs at)."""
    rotation = {"participants": [person], "shift": "weekly", "start": "2020-01-06T09:00"}
    return {"timezone": "Europe/Berlin", "layers": [{"rotations": [rotation]}]}


async def started(
    processes: dict[str, Callable[..., Any]], providers: Providers, ladder: Ladder
) -> tuple[Receiver, Alertmanager]:
    """The receiver with the policy above, and an Alertmanager grouping by namespace and delivering to it."""
    providers.slack.add_user(ALICE)
    providers.slack.add_user(BOB)
    receiver: Receiver = processes["receiver"]()
    receiver.config.write_text(yaml.safe_dump(settings(providers, receiver.url, ladder)))  # its address is known now
    receiver.env |= {
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
        "PAGERDUTY_WEBHOOK_SECRET": PAGERDUTY_SECRET,
        "RECEIVER_LINK_SECRET": LINK_SECRET,
    }
    await receiver.start()
    am: Alertmanager = processes["alertmanager"]()
    await am.start(alertmanager_config(receiver.url + "/api/v1/alerts", group_by=["namespace"]))
    return receiver, am


def about(message: Message, incident: str) -> bool:
    return message.metadata is not None and message.metadata["event_payload"].get("incident") == incident


def dm(providers: Providers, user: str, incident: str) -> list[Message]:
    """The messages about ``incident`` in the app's direct message with ``user``, oldest first."""
    return [m for m in providers.slack.messages(providers.slack.dm(user).id) if about(m, incident)]


def pages(providers: Providers, user: str, incident: str) -> list[Message]:
    """The pages about ``incident`` in ``user``'s direct message: the replies a ``paged`` delivery posted under
    the incident's message there (the first page posts that message too)."""
    return [m for m in dm(providers, user, incident) if m.thread_ts is not None and "/paged@" in str(m.metadata)]


def arrived(message: Message) -> datetime:
    """When the fake Slack took ``message`` (its ``ts`` is the fake's clock then)."""
    return datetime.fromtimestamp(float(message.ts), UTC)


async def timeline(receiver: Receiver, incident: str) -> list[dict[str, Any]]:
    return list((await api(receiver, "GET", f"/api/v1/incidents/{incident}"))["timeline"])


async def steps(receiver: Receiver, incident: str) -> list[tuple[datetime, str]]:
    """(when, text) of each line the escalation wrote in ``incident``'s timeline."""
    lines = await timeline(receiver, incident)
    return [(datetime.fromisoformat(e["at"]), e["text"]) for e in lines if e["kind"] == "escalation"]


async def stepped(receiver: Receiver, incident: str, count: int) -> list[tuple[datetime, str]]:
    """The escalation's lines once there are at least ``count``."""

    async def check() -> list[tuple[datetime, str]] | None:
        found = await steps(receiver, incident)
        return found if len(found) >= count else None

    return await eventually(check, f"{count} escalation lines in {incident}'s timeline", 20)


async def paged(providers: Providers, user: str, incident: str) -> Message:
    """``user``'s first page about ``incident``, once it has arrived."""

    async def check() -> Message | None:
        found = pages(providers, user, incident)
        return found[0] if found else None

    return await eventually(check, f"{user} to be paged about {incident}", 20)


def links(page: Message) -> dict[str, str]:
    """The signed links of a Slack message: label -> URL."""
    found = re.findall(r"<(http://127\.0\.0\.1:[0-9]+/links/[A-Za-z0-9_.-]+)\|(\w+)>", str(page.blocks))
    return {label: url for url, label in found}


def buttons(message: Message) -> dict[str, str]:
    """The buttons of a Slack message: action_id -> value."""
    blocks = message.blocks or []
    return {e["action_id"]: e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]}


def loads(receiver: Receiver, count: int) -> list[datetime] | None:
    """When each engine the receiver ran had loaded the incidents and their deadlines (its log says), once
    ``count`` have: from then on, a step that is due fires within one cycle."""
    found = [
        datetime.fromisoformat(json.loads(line)["time"])
        for log in sorted(receiver.workdir.glob("receiver-*.log"))
        for line in log.read_text().splitlines()
        if '"incidents loaded"' in line
    ]
    return found if len(found) >= count else None


async def steps_fired(receiver: Receiver, step: int) -> float:
    """``receiver_escalation_steps_total`` of the default policy's ``step`` (since the web process started)."""
    return await receiver.metric("receiver_escalation_steps_total", policy="default", step=str(step))


async def acknowledged(receiver: Receiver, incident: str) -> list[dict[str, Any]]:
    """The acknowledgements in ``incident``'s timeline."""
    return [e for e in await timeline(receiver, incident) if e["kind"] == "acknowledged"]


async def unchanged(receiver: Receiver, incident: str) -> None:
    """``incident`` is still triggered, nobody acknowledged it, and its escalation still waits after step 1."""
    found = await api(receiver, "GET", f"/api/v1/incidents/{incident}")
    assert (found["status"], found["acknowledgedAt"]) == ("triggered", None)
    assert [e["text"] for e in found["timeline"] if e["kind"] in ("acknowledged", "escalation")] == ROOMY.lines[:1]
    assert await receiver.metric("receiver_escalations_active") == 1


async def first_step(receiver: Receiver, providers: Providers, incident: str, ladder: Ladder) -> datetime:
    """Once alice's page has arrived: the deadline of the second step (the first step's time plus the wait)."""
    await paged(providers, ALICE, incident)
    [(fired, text), *later] = await stepped(receiver, incident, 1)
    assert text == ladder.lines[0] and len(later) <= 1, later  # step 2 may be there already on a slow day
    return fired + ladder.wait


async def stops(receiver: Receiver, am: Alertmanager, providers: Providers, incident: str, deadline: datetime) -> None:
    """``incident``'s escalation (``ROOMY``) has stopped: no longer active, and no step after the deadline it had.

    Another incident opened now has its second step fired after that deadline: the engine went past it,
    and fired nothing for ``incident``.
    """

    async def inactive() -> bool:
        return await receiver.metric("receiver_escalations_active") == 0

    await eventually(inactive, f"{incident}'s escalation to end", 10)
    await fire(am, BILLING_CRASH)
    billing = await incident_of(receiver, "billing")
    await paged(providers, BOB, billing)
    later = await stepped(receiver, billing, 2)
    assert later[1][0] > deadline
    assert [text for _, text in await steps(receiver, incident)] == ROOMY.lines[:1]
    assert dm(providers, BOB, incident) == []  # bob heard nothing of it
    assert await steps_fired(receiver, 2) == 1  # billing's


async def test_nobody_acknowledges_so_the_secondary_is_paged_after_the_wait_and_the_ladder_ends(
    processes: dict[str, Callable[..., Any]], providers: Providers
) -> None:
    receiver, am = await started(processes, providers, SHORT)
    await fire(am, SHOP_CRASH)
    shop = await incident_of(receiver, "shop")
    deadline = await first_step(receiver, providers, shop, SHORT)

    page = await paged(providers, BOB, shop)
    [(_, step_1), (fired_2, step_2), (ended, end)] = await stepped(receiver, shop, 3)
    assert [step_1, step_2, end] == SHORT.lines
    assert deadline <= fired_2 <= deadline + CYCLE  # on time
    assert fired_2 + SHORT.wait <= ended <= fired_2 + SHORT.wait + CYCLE
    # nothing reached bob before the deadline; his page came as the step fired
    assert all(arrived(m) >= deadline for m in dm(providers, BOB, shop))
    assert fired_2 <= arrived(page) <= fired_2 + SENT
    assert "step 2/2: paged bob (schedule:secondary)" in str(page.blocks)
    assert "- KubePodCrashLooping (SEV3, shop/web)" in str(page.blocks)  # the alert, named
    final = await settled(receiver, shop)
    assert final["status"] == "triggered"
    assert {e["actor"] for e in final["timeline"] if e["kind"] == "escalation"} == {"escalation"}
    assert len(pages(providers, ALICE, shop)) == len(pages(providers, BOB, shop)) == 1
    assert await steps_fired(receiver, 1) == await steps_fired(receiver, 2) == 1


async def test_a_kill_during_a_wait_fires_the_next_step_once_on_time(
    processes: dict[str, Callable[..., Any]], providers: Providers
) -> None:
    receiver, am = await started(processes, providers, ROOMY)
    await fire(am, SHOP_CRASH)
    shop = await incident_of(receiver, "shop")
    deadline = await first_step(receiver, providers, shop, ROOMY)
    await settled(receiver, shop)  # alice's page sent: nothing in flight

    engine = receiver.engine_pid()
    assert engine is not None and utc_now() < deadline
    os.kill(engine, signal.SIGKILL)  # the engine dies while waiting for step 2; the web process starts another
    await eventually(lambda: _async(process_gone(engine)), "the engine process to be gone", 10)
    [_, back] = await eventually(lambda: _async(loads(receiver, 2)), "another engine to load the incidents", 20)

    await paged(providers, BOB, shop)
    lines = await stepped(receiver, shop, 2)
    assert [text for _, text in lines] == ROOMY.lines[:2]  # step 1 not fired again
    fired_2 = lines[1][0]
    assert deadline <= fired_2 <= max(deadline, back) + CYCLE
    await settled(receiver, shop)
    end = fired_2 + ROOMY.wait

    engine = receiver.engine_pid()
    assert engine is not None and utc_now() < end
    os.kill(engine, signal.SIGKILL)  # now the whole daemon, while waiting for the ladder's end
    await receiver.kill()
    await eventually(lambda: _async(process_gone(engine)), "the engine process to be gone", 10)
    await receiver.start()
    [*_, back] = await eventually(lambda: _async(loads(receiver, 3)), "the new engine to load the incidents", 20)

    lines = await stepped(receiver, shop, 3)
    assert [text for _, text in lines] == ROOMY.lines  # each once
    assert end <= lines[2][0] <= max(end, back) + CYCLE
    await settled(receiver, shop)
    assert len(pages(providers, ALICE, shop)) == len(pages(providers, BOB, shop)) == 1
    assert len([m for m in dm(providers, BOB, shop) if m.thread_ts is None]) == 1  # his DM's message, posted once


async def test_a_signed_link_from_the_page_acknowledges_and_stops_the_escalation(
    processes: dict[str, Callable[..., Any]], providers: Providers
) -> None:
    receiver, am = await started(processes, providers, ROOMY)
    await fire(am, SHOP_CRASH)
    shop = await incident_of(receiver, "shop")
    deadline = await first_step(receiver, providers, shop, ROOMY)
    [page] = pages(providers, ALICE, shop)
    link = links(page)["Acknowledge"]
    keyring = Keyring((LINK_SECRET.encode(),))
    claim = keyring.verify(link.rsplit("/", 1)[1], utc_now())
    assert isinstance(claim, Claim) and claim == Claim(shop, Action.ACKNOWLEDGE, "alice", claim.expires)

    async with receiver.http.get(link) as response:
        shown = await response.text()
        assert response.status == 200, shown
    assert shop in shown and "<strong>alice</strong>" in shown and '<form method="post">' in shown
    expired = keyring.sign(Claim(shop, Action.ACKNOWLEDGE, "alice", utc_now() - timedelta(minutes=1)))
    forged = Keyring((b"not-the-link-secret-0123456789abcdef",)).sign(claim)
    for token, why in ((expired, "expired"), (forged, "signature is not valid")):
        for method in ("GET", "POST"):
            async with receiver.http.request(method, f"{receiver.url}/links/{token}") as response:
                assert response.status == 403 and why in await response.text()
    await unchanged(receiver, shop)

    assert utc_now() < deadline, TOO_SLOW
    async with receiver.http.post(link) as response:
        said = await response.text()
        assert response.status == 200 and f"{shop} is acknowledged by alice" in said, said
    [ack] = await acknowledged(receiver, shop)
    assert ack["actor"] == "alice" and "via signed link" in ack["text"]
    await stops(receiver, am, providers, shop, deadline)

    async def told() -> bool:  # where she was paged, alice hears it was acknowledged
        return any("/acknowledged@" in str(m.metadata) for m in dm(providers, ALICE, shop))

    await eventually(told, "alice's direct message to say the incident was acknowledged", 10)


async def test_a_slack_button_acknowledges_and_stops_the_escalation(
    processes: dict[str, Callable[..., Any]], providers: Providers
) -> None:
    receiver, am = await started(processes, providers, ROOMY)
    await fire(am, SHOP_CRASH)
    shop = await incident_of(receiver, "shop")
    deadline = await first_step(receiver, providers, shop, ROOMY)
    [message] = [m for m in dm(providers, ALICE, shop) if m.thread_ts is None]
    assert buttons(message) == {"receiver_acknowledge": shop, "receiver_resolve": shop}
    answers = providers.slack.response_url()

    def click(secret: str) -> tuple[bytes, dict[str, str]]:
        return signed_interaction(
            secret, ALICE, [("receiver_acknowledge", shop)], int(time.time()), response_url=answers
        )

    status, said = await post(receiver, "/api/v1/slack/interactions", click("not-the-signing-secret-0123456"))
    assert status == 401 and "does not match" in said
    await unchanged(receiver, shop)

    assert utc_now() < deadline, TOO_SLOW
    assert await post(receiver, "/api/v1/slack/interactions", click(SLACK_SECRET)) == (200, "")
    [ack] = await eventually(lambda: acknowledged(receiver, shop), "the acknowledgement", 10)
    assert ack["actor"] == "alice"
    await stops(receiver, am, providers, shop, deadline)


async def test_a_pagerduty_webhook_acknowledges_stops_the_escalation_and_sends_nothing_back(
    processes: dict[str, Callable[..., Any]], providers: Providers
) -> None:
    receiver, am = await started(processes, providers, ROOMY)
    await fire(am, SHOP_CRASH)
    shop = await incident_of(receiver, "shop")
    deadline = await first_step(receiver, providers, shop, ROOMY)
    await settled(receiver, shop, opened={"slack", "pagerduty"})
    assert actions(providers, shop) == ["trigger"]
    event = webhook_event("incident.acknowledged", shop, agent=user_agent(ALICE_PD, "Alice Example"))

    status, _ = await post(receiver, "/api/v1/pagerduty/webhooks", signed_webhook(["not-the-secret-0123"], event))
    assert status == 401
    await unchanged(receiver, shop)

    assert utc_now() < deadline, TOO_SLOW
    status, said = await post(receiver, "/api/v1/pagerduty/webhooks", signed_webhook([PAGERDUTY_SECRET], event))
    assert status == 200 and '"applied"' in said
    [ack] = await acknowledged(receiver, shop)
    assert ack["actor"] == "pagerduty: alice"
    await stops(receiver, am, providers, shop, deadline)
    final = await settled(receiver, shop, acknowledged={"slack", "pagerduty"})
    assert states(final)[("acknowledged", "pagerduty")] == ["skipped"]  # came from PagerDuty: not sent back
    assert actions(providers, shop) == ["trigger"]
