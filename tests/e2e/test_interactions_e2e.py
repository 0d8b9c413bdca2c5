"""Acknowledging where people are, end to end: a real ``receiver serve`` (web and engine processes), the fakes.

The daemon's Slack channel posts to the fake Slack with its buttons; the click sent back is the button
Slack shows, signed as Slack signs it, with the real clock. Its PagerDuty channel sends to the fake
Events API; a webhook signed as PagerDuty signs it resolves an incident there, and nothing is sent back.
The secrets come from the environment (``env:NAME``). Forged requests are refused and change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.e2e.harness import Receiver, eventually
from tests.e2e.test_notifications_e2e import (
    ROUTING_KEY,
    SLACK_CHANNEL,
    TOKEN,
    Providers,
    actions,
    api,
    providers,
    settled,
    states,
)
from tests.fakes.pagerduty import signed_webhook, user_agent, webhook_event
from tests.fakes.slack import signed_interaction
from tests.payloads import body
from tests.test_runs import crashloop

__all__ = ["providers"]  # the fixture, used by name
SLACK_SECRET = "e2e-slack-signing-secret-0123456789"
PAGERDUTY_SECRET = "e2e-pagerduty-webhook-secret-01234"
ALICE = "U0E2EALICE"
T = TypeVar("T")


def settings(providers: Providers) -> dict[str, Any]:
    channels = providers.channels()
    channels["slack"] |= {"signing_secret": "env:SLACK_SIGNING_SECRET"}
    channels["pagerduty"] |= {"webhook_secret": "env:PAGERDUTY_WEBHOOK_SECRET"}
    del channels["email"]
    return {
        "api": {"token": TOKEN},
        "notify": {"channels": channels, "routes": [{"channels": ["slack", "pagerduty"]}], "retry": {"first": "200ms"}},
        "oncall": {
            "people": {
                "alice": {"timezone": "Europe/Berlin", "slack_user": ALICE},
                "bob": {"timezone": "America/New_York", "pagerduty_user": "PE2EBOB"},
            }
        },
    }


async def started(processes: dict[str, Callable[..., Any]], providers: Providers) -> Receiver:
    receiver: Receiver = processes["receiver"](settings(providers))
    receiver.env |= {"SLACK_SIGNING_SECRET": SLACK_SECRET, "PAGERDUTY_WEBHOOK_SECRET": PAGERDUTY_SECRET}
    await receiver.start()
    return receiver


async def opened(receiver: Receiver, pod: str) -> str:
    headers = {"Authorization": "Bearer e2e-token", "Content-Type": "application/json"}
    async with receiver.http.post(
        receiver.url + "/api/v1/alerts", data=body(crashloop(pod=pod)), headers=headers
    ) as response:
        assert response.status == 200

    async def found() -> str | None:
        listed = (await api(receiver, "GET", "/api/v1/incidents"))["incidents"]
        return next((i["id"] for i in listed if i["status"] == "triggered"), None)

    return await eventually(found, "the incident", 20)


async def _async(value: T) -> T:
    return value


async def post(receiver: Receiver, path: str, request: tuple[bytes, dict[str, str]]) -> tuple[int, str]:
    data, headers = request
    async with receiver.http.post(receiver.url + path, data=data, headers=headers) as response:
        return response.status, await response.text()


async def test_a_slack_button_acknowledges_and_a_pagerduty_webhook_resolves_with_nothing_sent_back(
    processes: dict[str, Callable[..., Any]], providers: Providers
) -> None:
    receiver = await started(processes, providers)
    shop = await opened(receiver, "web-7d4b9c6f5-x2x9z")
    await settled(receiver, shop, opened={"slack", "pagerduty"})
    [message] = [m for m in providers.slack.messages(SLACK_CHANNEL) if m.thread_ts is None]
    buttons = {
        e["action_id"]: e["value"] for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"]
    }
    assert buttons == {"receiver_acknowledge": shop, "receiver_resolve": shop}
    answers = providers.slack.response_url()

    forged = signed_interaction(
        "not-the-secret", ALICE, [("receiver_acknowledge", shop)], int(time.time()), response_url=answers
    )
    status, said = await post(receiver, "/api/v1/slack/interactions", forged)
    assert status == 401 and "does not match" in said
    stale = signed_interaction(
        SLACK_SECRET, ALICE, [("receiver_acknowledge", shop)], int(time.time()) - 600, response_url=answers
    )
    assert (await post(receiver, "/api/v1/slack/interactions", stale))[0] == 401
    assert (await api(receiver, "GET", f"/api/v1/incidents/{shop}"))["status"] == "triggered"

    click = signed_interaction(
        SLACK_SECRET, ALICE, [("receiver_acknowledge", shop)], int(time.time()), response_url=answers
    )
    assert await post(receiver, "/api/v1/slack/interactions", click) == (200, "")
    again = signed_interaction(
        SLACK_SECRET, ALICE, [("receiver_acknowledge", shop)], int(time.time()), response_url=answers
    )
    status, said = await post(receiver, "/api/v1/slack/interactions", again)
    assert status == 200 and "cannot become acknowledged" in said  # told to the clicking user alone ...
    [told] = await eventually(lambda: _async(providers.slack.received("/actions/")), "the answer at its response_url")
    assert "cannot become acknowledged" in told.body["text"]  # ... where Slack shows it
    acked = await settled(receiver, shop, acknowledged={"slack", "pagerduty"})
    assert acked["status"] == "acknowledged"
    assert [e["actor"] for e in acked["timeline"] if e["kind"] == "acknowledged"] == ["alice"]
    assert actions(providers, shop) == ["trigger", "acknowledge"]  # ours, so PagerDuty is told

    forged_hook = signed_webhook(["not-the-secret"], webhook_event("incident.resolved", shop))
    assert (await post(receiver, "/api/v1/pagerduty/webhooks", forged_hook))[0] == 401
    bob = user_agent("PE2EBOB", "Bob Builder")
    resolve = signed_webhook([PAGERDUTY_SECRET], webhook_event("incident.resolved", shop, agent=bob))
    status, said = await post(receiver, "/api/v1/pagerduty/webhooks", resolve)
    assert status == 200 and '"applied"' in said
    final = await settled(receiver, shop, resolved={"slack", "pagerduty"})
    assert final["status"] == "resolved"
    assert [e["actor"] for e in final["timeline"] if e["kind"] == "resolved"] == ["pagerduty: bob"]
    assert states(final)[("resolved", "pagerduty")] == ["skipped"] and states(final)[("resolved", "slack")] == ["sent"]
    assert actions(providers, shop) == ["trigger", "acknowledge"]  # no resolve sent back: no loop
    alert = providers.pagerduty.alert(shop, ROUTING_KEY)
    assert alert is not None and alert.status == "acknowledged"
