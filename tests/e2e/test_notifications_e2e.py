"""Notifications end to end: a real Alertmanager, a real ``receiver serve``, the providers' fakes.

kube-prometheus-stack's alerts (tests/corpus) are pushed into a real Alertmanager, which groups them
by namespace and delivers them to a real ``receiver serve`` (web and engine processes). Its
notification channels point at the fakes of tests/fakes, served by this process on 127.0.0.1: Slack's
Web API (a bot token), PagerDuty's Events API v2 and an SMTP relay (STARTTLS on the fake's test-time
certificate). Everything the daemon sends is read back from the fakes, and the daemon's own account of
it from its API.

- Through an incident's life each channel hears each thing once: PagerDuty is triggered with the
  incident's id as ``dedup_key``, then acknowledged and resolved; a mail goes out for each event
  (threaded); the incident's GET shows every notification ``sent``.
- Killed (SIGKILL, web and engine) while a PagerDuty trigger and a mail were in flight (the fakes
  took them and held their answers), the restarted daemon sends the trigger again (harmless: the
  dedup key), marks the mail ``interrupted`` and shows it, never sends it twice, and goes on
  to acknowledge and resolve.
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
from tests.fakes.smtp import Received, SmtpFake

TOKEN = "e2e-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTING_KEY = "R0E2EROUTINGKEY0000000000000000A"
SENDER = "receiver@example.org"
ONCALL = "oncall@example.org"
CHANNELS = ("pagerduty", "email")

SHOP_CRASH = alert("KubePodCrashLooping", namespace="shop", pod="web-7d4b9c6f5-x2x9z", container="web")
SHOP_ROLLOUT = alert("KubeDeploymentRolloutStuck", namespace="shop", deployment="cart")
BILLING_CRASH = alert("KubePodCrashLooping", namespace="billing", pod="invoices-5f6d7c8b9-k4m2p", container="api")


@dataclass
class Providers:
    """The fakes the daemon notifies."""

    pagerduty: PagerDutyFake
    smtp: SmtpFake

    def channels(self) -> dict[str, Any]:
        """``notify.channels`` pointing at the fakes."""
        return {
            "pagerduty": {"type": "pagerduty", "routing_key": ROUTING_KEY, "api_url": self.pagerduty.url},
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


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    async with PagerDutyFake(routing_keys=[ROUTING_KEY]) as pagerduty, SmtpFake() as smtp:
        yield Providers(pagerduty, smtp)


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
    await settled(receiver, shop, acknowledged=set(CHANNELS), status_update={"email"})

    await end(am, SHOP_CRASH, SHOP_ROLLOUT, BILLING_CRASH)
    shop_final = await settled(receiver, shop, resolved=set(CHANNELS))
    billing_final = await settled(receiver, billing, resolved=set(CHANNELS))

    assert shop_final["status"] == billing_final["status"] == "resolved"
    for final in (shop_final, billing_final):
        assert {n["state"] for n in final["notifications"]} == {"sent"}, final["notifications"]
    # PagerDuty: one alert per incident, keyed by its id; paged once, acknowledged, resolved once
    assert actions(providers, shop) == ["trigger", "trigger", "acknowledge", "resolve"]
    assert actions(providers, billing) == ["trigger", "resolve"]
    assert providers.pagerduty.pages(shop) == providers.pagerduty.pages(billing) == 1
    assert {a.dedup_key: a.status for a in providers.pagerduty.alerts} == {shop: "resolved", billing: "resolved"}
    assert [o.effect for o in providers.pagerduty.outcomes if o.dedup_key == shop][1] == "deduplicated"
    # email: one mail per notification the daemon recorded as sent (its Message-ID), all in one thread
    for incident, final in ((shop, shop_final), (billing, billing_final)):
        mails = providers.mails(incident)
        sent = [n["providerId"] for n in final["notifications"] if n["channel"] == "email"]
        assert sorted(str(m.message["Message-ID"]) for m in mails) == sorted(sent)
        assert len({str(m.message["References"]) for m in mails}) == 1
        assert all(m.tls and m.rcpt_tos == (ONCALL,) for m in mails)
    mailed = [event for event, channel in states(shop_final) if channel == "email"]
    assert mailed == ["opened", "acknowledged", "status_update", "resolved"]
    assert "rolled back cart" in providers.mails(shop)[2].message.get_body(("plain",)).get_content()


async def test_a_kill_while_sending_neither_loses_nor_repeats_a_notification(
    processes: dict[str, Callable[..., Any]], providers: Providers
) -> None:
    trigger, mail = providers.pagerduty.hold(ENQUEUE), providers.smtp.hold_data()
    receiver, am = await started(processes, providers)
    await fire(am, SHOP_CRASH)
    shop = await incident_of(receiver, "shop")
    await trigger.wait_for_arrivals(1, within=20)
    [first_mail] = await mail.wait_for_arrivals(1, within=20)
    engine = receiver.engine_pid()
    assert engine is not None
    os.kill(engine, signal.SIGKILL)  # web and engine die with the three sends in flight
    await receiver.kill()
    await eventually(lambda: _gone(engine), "the engine process to be gone", 10)
    trigger.release()
    mail.release()
    assert actions(providers, shop) == ["trigger"] and providers.mails(shop) == [first_mail]

    await receiver.start()
    after = await settled(receiver, shop, opened=set(CHANNELS))
    assert states(after)[("opened", "email")] == ["interrupted"]
    assert states(after)[("opened", "pagerduty")] == ["sent"]
    interrupted = [e["text"] for e in after["timeline"] if "interrupted" in e["text"]]
    assert interrupted == ["notification to email (opened) interrupted by a restart; it may have left: not sent again"]

    await api(receiver, "POST", f"/api/v1/incidents/{shop}/ack", {"actor": "alice"})
    await end(am, SHOP_CRASH)
    final = await settled(receiver, shop, acknowledged=set(CHANNELS), resolved=set(CHANNELS))
    assert states(final) == {
        ("opened", "pagerduty"): ["sent"],
        ("opened", "email"): ["interrupted"],
        ("acknowledged", "pagerduty"): ["sent"],
        ("acknowledged", "email"): ["sent"],
        ("resolved", "pagerduty"): ["sent"],
        ("resolved", "email"): ["sent"],
    }
    # PagerDuty: the interrupted trigger sent again (the same alert: deduplicated), nothing missing after it
    assert actions(providers, shop) == ["trigger", "trigger", "acknowledge", "resolve"]
    assert providers.pagerduty.pages(shop) == 1
    # email: the interrupted mail is not sent again; the later ones are
    mails = providers.mails(shop)
    ids = [str(m.message["Message-ID"]) for m in mails]
    assert len(mails) == 3 and ids.count(str(first_mail.message["Message-ID"])) == 1


async def _gone(pid: int) -> bool:
    return process_gone(pid)
