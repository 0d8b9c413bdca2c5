"""Notifications end to end: a real Alertmanager, a real ``receiver serve``, the providers' fakes.

kube-prometheus-stack's alerts (tests/corpus) are pushed into a real Alertmanager, which groups them
by namespace and delivers them to a real ``receiver serve`` (web and engine processes). Its
notification channels point at the fakes of tests/fakes, served by this process on 127.0.0.1: Slack's
Web API (a bot token), PagerDuty's Events API v2 and an SMTP relay (STARTTLS on the fake's test-time
certificate). Everything the daemon sends is read back from the fakes, and the daemon's own account of
it from its API.

- Through an incident's life each channel hears each thing once: Slack gets one message per incident
  (one chat.postMessage outside a thread), edited as alerts join and as it is acknowledged and
  resolved, with each piece of news (a status update posted through the API among them) replied in
  its thread; PagerDuty is triggered with the incident's id as ``dedup_key``, then acknowledged and
  resolved; a mail goes out for each event (threaded); the incident's GET shows every notification
  ``sent``.
- Killed (SIGKILL, web and engine) while the incident's Slack message, its PagerDuty trigger and its
  mail were in flight (the fakes took them and held their answers), the restarted daemon finds the
  Slack message by its metadata instead of posting it again, sends the trigger again (harmless: the
  dedup key), marks the mail ``interrupted`` and shows it, never sends it twice, and goes on to
  acknowledge and resolve.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.corpus import CorpusAlert, alert, prometheus_alert
from tests.e2e.harness import Alertmanager, Receiver, alertmanager_config, eventually, process_gone
from tests.fakes.pagerduty import ENQUEUE, PagerDutyFake
from tests.fakes.server import Recorded
from tests.fakes.slack import Message, SlackFake
from tests.fakes.smtp import Received, SmtpFake

TOKEN = "e2e-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTING_KEY = "R0E2EROUTINGKEY0000000000000000A"
SENDER = "receiver@example.org"
ONCALL = "oncall@example.org"
SLACK_CHANNEL = "C0E2EINCIDENTS"
CHANNELS = ("pagerduty", "slack", "email")
POST, UPDATE, HISTORY = "/api/chat.postMessage", "/api/chat.update", "/api/conversations.history"

SHOP_CRASH = alert("KubePodCrashLooping", namespace="shop", pod="web-7d4b9c6f5-x2x9z", container="web")
SHOP_ROLLOUT = alert("KubeDeploymentRolloutStuck", namespace="shop", deployment="cart")
BILLING_CRASH = alert("KubePodCrashLooping", namespace="billing", pod="invoices-5f6d7c8b9-k4m2p", container="api")


@dataclass
class Providers:
    """The fakes the daemon notifies."""

    slack: SlackFake
    pagerduty: PagerDutyFake
    smtp: SmtpFake

    def channels(self) -> dict[str, Any]:
        """``notify.channels`` pointing at the fakes."""
        return {
            "slack": self.slack.channel_settings(SLACK_CHANNEL),
            "pagerduty": self.pagerduty.channel_settings(ROUTING_KEY),
            "email": {
                "type": "email",
                "host": self.smtp.host,
                "port": self.smtp.port,
                "security": "starttls",
                "ca_file": str(self.smtp.ca_file),
                "sender": SENDER,
                "to": [ONCALL],
            },
        }

    def mails(self, incident: str) -> list[Received]:
        """The mails about ``incident``, in arrival order."""
        return [m for m in self.smtp.messages if incident in str(m.message["Subject"])]

    def posts(self, incident: str) -> list[Recorded]:
        """The chat.postMessage calls posting ``incident``'s message (not in a thread)."""
        return [r for r in self.slack.received(POST) if _about(r, incident) and not r.body.get("thread_ts")]

    def message(self, incident: str) -> Message:
        """``incident``'s message as Slack keeps it (the one message of the channel that names it)."""
        [found] = [m for m in self.slack.messages(SLACK_CHANNEL) if m.thread_ts is None and _names(m, incident)]
        return found

    def replies(self, incident: str) -> dict[str, str]:
        """The replies in ``incident``'s thread: the key of the delivery that posted each -> its blocks' text."""
        thread = self.message(incident)
        replies = [m for m in self.slack.messages(SLACK_CHANNEL) if m.thread_ts == thread.ts]
        return {str((m.metadata or {})["event_payload"]["key"]): str(m.blocks) for m in replies}


def _about(request: Recorded, incident: str) -> bool:
    metadata = request.body.get("metadata") if isinstance(request.body, dict) else None
    return isinstance(metadata, dict) and metadata["event_payload"]["incident"] == incident


def _names(message: Message, incident: str) -> bool:
    return message.metadata is not None and message.metadata["event_payload"]["incident"] == incident


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    async with (
        SlackFake() as slack,
        PagerDutyFake(routing_keys=[ROUTING_KEY]) as pagerduty,
        SmtpFake() as smtp,
    ):
        slack.add_channel(SLACK_CHANNEL, "incidents")
        yield Providers(slack, pagerduty, smtp)


def settings(providers: Providers) -> dict[str, Any]:
    """The daemon's settings: its API, quick resolution, every incident to every channel."""
    return {
        "api": {"token": TOKEN},
        "alerts": {"expiry_check_interval": "200ms"},
        "incidents": {"correlation": {"quiet_period": "1s"}},
        "notify": {
            "channels": providers.channels(),
            "routes": [{"name": "everyone", "channels": list(CHANNELS)}],
            "retry": {"first": "200ms"},
        },
    }


async def started(processes: dict[str, Callable[..., Any]], providers: Providers) -> tuple[Receiver, Alertmanager]:
    """A receiver notifying the fakes, and an Alertmanager grouping by namespace and delivering to it."""
    receiver: Receiver = processes["receiver"](settings(providers))
    await receiver.start()
    am: Alertmanager = processes["alertmanager"]()
    await am.start(alertmanager_config(receiver.url + "/api/v1/alerts", group_by=["namespace"]))
    return receiver, am


async def fire(am: Alertmanager, *alerts: CorpusAlert) -> None:
    """The alerts firing, as Prometheus pushes them."""
    now = datetime.fromtimestamp(await am.now(), UTC)
    await am.push([prometheus_alert(a, starts_at=now) for a in alerts])


async def end(am: Alertmanager, *alerts: CorpusAlert) -> None:
    """The alerts resolved now, as Prometheus pushes a resolved alert (its ``endsAt`` passed)."""
    now = datetime.fromtimestamp(await am.now(), UTC)
    await am.push([prometheus_alert(a, starts_at=now, ends_at=now) for a in alerts])


async def api(receiver: Receiver, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The receiver's API: the answer's JSON (a 2xx is required)."""
    async with receiver.http.request(method, receiver.url + path, json=body, headers=AUTH) as response:
        assert response.status < 300, f"{method} {path}: {response.status} {await response.text()}"
        return await response.json()


async def incident_of(receiver: Receiver, namespace: str) -> str:
    """The id of the incident of ``namespace``, once it exists."""

    async def found() -> str | None:
        listed = (await api(receiver, "GET", "/api/v1/incidents"))["incidents"]
        return next((i["id"] for i in listed if i["scope"] == f"namespace:{namespace}"), None)

    return await eventually(found, f"the incident of namespace {namespace}", 20)


async def settled(receiver: Receiver, incident: str, **wanted: set[str]) -> dict[str, Any]:
    """The incident once, for each ``event=channels``, those channels' notifications exist and none is due.

    Nothing pending or sending means the sender has nothing more to send for it.
    """

    async def check() -> dict[str, Any] | None:
        found = await api(receiver, "GET", f"/api/v1/incidents/{incident}")
        rows = found["notifications"]
        have = {(n["event"], n["channel"]) for n in rows}
        complete = all((event, c) in have for event, channels in wanted.items() for c in channels)
        idle = all(n["state"] not in ("pending", "sending") for n in rows)
        return found if complete and idle else None

    return await eventually(check, f"{incident}'s notifications {wanted} to be final", 30)


def states(incident: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """(event, channel) -> the states of its notifications."""
    out: dict[tuple[str, str], list[str]] = {}
    for n in sorted(incident["notifications"], key=lambda n: n["id"]):
        out.setdefault((n["event"], n["channel"]), []).append(n["state"])
    return out


def actions(providers: Providers, incident: str) -> list[str]:
    """The PagerDuty events sent for ``incident``'s alert, in order."""
    return [o.event["event_action"] for o in providers.pagerduty.outcomes if o.dedup_key == incident]


def event_of(key: str) -> str:
    """The signal an idempotency key names (``INC-…/acknowledged@<micros>/slack`` -> ``acknowledged``)."""
    return key.split("/")[1].split("@")[0]


def pagerduty_followed(providers: Providers, shop: str, billing: str) -> None:
    """One alert per incident, keyed by its id: paged once, told of the new service, acknowledged, resolved once."""
    assert actions(providers, shop) == ["trigger", "trigger", "acknowledge", "resolve"]
    assert actions(providers, billing) == ["trigger", "resolve"]
    assert providers.pagerduty.pages(shop) == providers.pagerduty.pages(billing) == 1
    assert {a.dedup_key: a.status for a in providers.pagerduty.alerts} == {shop: "resolved", billing: "resolved"}
    assert [o.effect for o in providers.pagerduty.outcomes if o.dedup_key == shop][1] == "deduplicated"


def mailed_once_each(providers: Providers, *finals: dict[str, Any]) -> None:
    """One mail per notification the daemon recorded as sent (its Message-ID), an incident's in one thread."""
    for final in finals:
        mails = providers.mails(final["id"])
        sent = [n["providerId"] for n in final["notifications"] if n["channel"] == "email"]
        assert sorted(str(m.message["Message-ID"]) for m in mails) == sorted(sent)
        assert len({str(m.message["References"]) for m in mails}) == 1
        assert all(m.tls and m.rcpt_tos == (ONCALL,) for m in mails)
    mailed = [event for event, channel in states(finals[0]) if channel == "email"]
    assert mailed == ["opened", "acknowledged", "status_update", "resolved"]


def slack_followed(providers: Providers, shop: str, billing: str) -> None:
    """One message per incident, kept up to date, the news in its thread, each once; Slack's pace kept."""
    for incident in (shop, billing):
        [posted] = providers.posts(incident)
        message = providers.message(incident)
        assert posted.body["channel"] == SLACK_CHANNEL and message.edited is not None
        assert "*Status:* resolved" in str(message.blocks)
        updates = [r for r in providers.slack.received(UPDATE) if r.body["ts"] == message.ts]
        assert updates and all(r.status == 200 for r in updates)
    assert "shop/cart" in str(providers.message(shop).blocks)  # the service that joined
    replies = providers.replies(shop)
    assert sorted(map(event_of, replies)) == ["acknowledged", "resolved", "services_joined", "status_update"]
    assert any("rolled back cart" in text for key, text in replies.items() if event_of(key) == "status_update")
    assert list(map(event_of, providers.replies(billing))) == ["resolved"]
    assert not [r for r in providers.slack.requests if r.status != 200]  # no 429: its pace was kept


async def test_an_incident_is_told_through_its_life_once_per_channel(
    processes: dict[str, Callable[..., Any]], providers: Providers
) -> None:
    receiver, am = await started(processes, providers)
    await fire(am, SHOP_CRASH, BILLING_CRASH)
    shop, billing = await incident_of(receiver, "shop"), await incident_of(receiver, "billing")
    await settled(receiver, shop, opened=set(CHANNELS))
    await settled(receiver, billing, opened=set(CHANNELS))

    await fire(am, SHOP_ROLLOUT)  # joins the shop's incident: a new service

    async def joined() -> bool:
        return len([a for a in actions(providers, shop) if a == "trigger"]) >= 2

    await eventually(joined, "PagerDuty's alert to be told of the new service", 20)
    await api(receiver, "POST", f"/api/v1/incidents/{shop}/ack", {"actor": "alice", "reason": "looking into it"})
    update = "We rolled back cart's last deploy; watching the error rate."
    await api(receiver, "POST", f"/api/v1/incidents/{shop}/updates", {"actor": "alice", "text": update})
    await settled(receiver, shop, acknowledged=set(CHANNELS), status_update={"slack", "email"})

    await end(am, SHOP_CRASH, SHOP_ROLLOUT, BILLING_CRASH)
    shop_final = await settled(receiver, shop, resolved=set(CHANNELS))
    billing_final = await settled(receiver, billing, resolved=set(CHANNELS))

    assert shop_final["status"] == billing_final["status"] == "resolved"
    for final in (shop_final, billing_final):
        assert {n["state"] for n in final["notifications"]} == {"sent"}, final["notifications"]
    pagerduty_followed(providers, shop, billing)
    mailed_once_each(providers, shop_final, billing_final)
    assert "rolled back cart" in providers.mails(shop)[2].message.get_body(("plain",)).get_content()
    slack_followed(providers, shop, billing)


async def test_a_kill_while_sending_neither_loses_nor_repeats_a_notification(
    processes: dict[str, Callable[..., Any]], providers: Providers
) -> None:
    post, trigger, mail = providers.slack.hold(POST), providers.pagerduty.hold(ENQUEUE), providers.smtp.hold_data()
    receiver, am = await started(processes, providers)
    await fire(am, SHOP_CRASH)
    shop = await incident_of(receiver, "shop")
    await post.wait_for_arrivals(1, within=20)
    await trigger.wait_for_arrivals(1, within=20)
    [first_mail] = await mail.wait_for_arrivals(1, within=20)
    engine = receiver.engine_pid()
    assert engine is not None
    os.kill(engine, signal.SIGKILL)  # web and engine die with the three sends in flight
    await receiver.kill()
    await eventually(lambda: _gone(engine), "the engine process to be gone", 10)
    for held in (post, trigger, mail):
        held.release()  # Slack posted the message, PagerDuty opened its alert, the relay queued the mail
    assert len(providers.posts(shop)) == 1 and providers.slack.received(HISTORY) == []
    assert actions(providers, shop) == ["trigger"] and providers.mails(shop) == [first_mail]

    await receiver.start()
    after = await settled(receiver, shop, opened=set(CHANNELS))
    assert states(after)[("opened", "email")] == ["interrupted"]
    assert states(after)[("opened", "pagerduty")] == states(after)[("opened", "slack")] == ["sent"]
    interrupted = [e["text"] for e in after["timeline"] if "interrupted" in e["text"]]
    assert interrupted == ["notification to email (opened) interrupted by a restart; it may have left: not sent again"]
    found = [e["text"] for e in after["timeline"] if "found the message posted before the crash" in e["text"]]
    assert len(found) == 1 and "to slack" in found[0]
    assert providers.slack.received(HISTORY)  # looked for by its metadata ...
    assert len(providers.posts(shop)) == 1  # ... and not posted again

    await api(receiver, "POST", f"/api/v1/incidents/{shop}/ack", {"actor": "alice"})
    await end(am, SHOP_CRASH)
    final = await settled(receiver, shop, acknowledged=set(CHANNELS), resolved=set(CHANNELS))
    assert {k: v for k, v in states(final).items() if k[0] != "alerts_changed"} == {
        ("opened", "pagerduty"): ["sent"],
        ("opened", "slack"): ["sent"],
        ("opened", "email"): ["interrupted"],
        ("acknowledged", "pagerduty"): ["sent"],
        ("acknowledged", "slack"): ["sent"],
        ("acknowledged", "email"): ["sent"],
        ("resolved", "pagerduty"): ["sent"],
        ("resolved", "slack"): ["sent"],
        ("resolved", "email"): ["sent"],
    }
    # Slack: still one message, its thread going on under it
    assert len(providers.posts(shop)) == 1
    replies = providers.replies(shop)
    assert sorted(map(event_of, replies)) == ["acknowledged", "resolved"]
    assert "*Status:* resolved" in str(providers.message(shop).blocks)
    # PagerDuty: the interrupted trigger sent again (the same alert: deduplicated), nothing missing after it
    assert actions(providers, shop) == ["trigger", "trigger", "acknowledge", "resolve"]
    assert providers.pagerduty.pages(shop) == 1
    # email: the interrupted mail is not sent again; the later ones are
    mails = providers.mails(shop)
    ids = [str(m.message["Message-ID"]) for m in mails]
    assert len(mails) == 3 and ids.count(str(first_mail.message["Message-ID"])) == 1


async def _gone(pid: int) -> bool:
    return process_gone(pid)
