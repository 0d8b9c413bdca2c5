"""A real Alertmanager posting to a real ``receiver serve`` process."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from tests.e2e.harness import alertmanager_config, eventually, iso, read_events


def prom_alert(name: str, starts: float, ends: float | None = None, **labels: str) -> dict[str, Any]:
    """An alert as Prometheus posts it to Alertmanager."""
    alert: dict[str, Any] = {"labels": {"alertname": name, **labels}, "startsAt": iso(starts)}
    if ends is not None:
        alert["endsAt"] = iso(ends)
    return alert


async def test_alerts_fire_then_resolve_and_the_receiver_follows(processes: dict[str, Any]) -> None:
    receiver = processes["receiver"]({"webhook": {"max_body_bytes": 65536}})
    await receiver.start()
    am = processes["alertmanager"]()
    await am.start(alertmanager_config(receiver.url + "/api/v1/alerts"))
    started = await am.now()
    alerts = [prom_alert("E2EHighErrorRate", started, service=s, namespace="prod") for s in ("api", "web")]
    await am.push(alerts)

    async def firing() -> list[dict[str, Any]]:
        found = await receiver.alerts(status="firing")
        return found if len(found) == 2 else []

    fired = await eventually(firing, "two firing alerts in the receiver")
    assert {a["labels"]["service"] for a in fired} == {"api", "web"}
    assert all(a["endsAt"] is None for a in fired)

    await am.push([{**a, "endsAt": iso(await am.now())} for a in alerts])

    async def resolved() -> list[dict[str, Any]]:
        found = await receiver.alerts(status="resolved")
        return found if len(found) == 2 else []

    done = await eventually(resolved, "both alerts resolved in the receiver")
    assert {a["fingerprint"] for a in done} == {a["fingerprint"] for a in fired}
    assert await receiver.metric("receiver_notifications_total", result="rejected_auth") == 0
    assert await receiver.alerts(status="firing") == []
    await receiver.kill()
    kinds = Counter(kind for _, kind in await read_events(receiver.data_dir))
    assert kinds == {"fired": 2, "resolved": 2}


async def test_clustered_peers_deliver_duplicates_and_each_update_is_stored_once(processes: dict[str, Any]) -> None:
    receiver = processes["receiver"]()
    await receiver.start()
    slow = processes["proxy"](receiver.url, 2.0)  # the first delivery is still in flight at the peer's turn
    await slow.start()
    config = alertmanager_config(slow.url + "/api/v1/alerts")
    first, second = processes["alertmanager"]("am1"), processes["alertmanager"]("am2")
    await first.start(config, peers=[], peer_timeout="500ms")
    await second.start(config, peers=[first.cluster_port], peer_timeout="500ms")
    started = await first.now()
    alerts = [prom_alert("E2EHaDuplicate", started, pod=f"p{i}") for i in range(3)]
    for am in (first, second):  # Prometheus sends every alert to every Alertmanager
        await am.push(alerts)

    async def received() -> float:
        accepted = await receiver.metric("receiver_notifications_total", result="accepted")
        duplicates = await receiver.metric("receiver_notifications_total", result="duplicate")
        return accepted + duplicates if accepted + duplicates >= 2 else 0

    total = await eventually(received, "deliveries from both Alertmanager peers", 45)
    assert await first.webhook_deliveries() >= 1, "the first peer delivered nothing"
    assert await second.webhook_deliveries() >= 1, "the second peer delivered nothing"
    assert await receiver.metric("receiver_notifications_total", result="accepted") == 1
    assert await receiver.metric("receiver_notifications_total", result="duplicate") == total - 1
    assert await receiver.metric("receiver_alert_duplicates_total") == 3 * (total - 1)
    assert len(await receiver.alerts(status="firing")) == 3
    await receiver.kill()
    events = await read_events(receiver.data_dir)
    assert sorted(kind for _, kind in events) == ["fired"] * 3
    assert len({fp for fp, _ in events}) == 3


async def test_sigkill_while_alertmanager_sends_loses_nothing_it_delivered(processes: dict[str, Any]) -> None:
    receiver = processes["receiver"]()
    await receiver.start()
    am = processes["alertmanager"]()
    await am.start(alertmanager_config(receiver.url + "/api/v1/alerts"))
    names = [f"E2EKill{i:02d}" for i in range(24)]  # one group each: once delivered, never re-sent (repeat 1h)

    async def push_all() -> None:
        for name in names:
            await am.push([prom_alert(name, await am.now(), namespace="prod")])
            await asyncio.sleep(0.1)

    pushing = asyncio.create_task(push_all())
    await asyncio.sleep(1.2)
    await receiver.kill()
    delivered_before_kill = await am.webhook_deliveries()
    await asyncio.sleep(1.0)  # Alertmanager meets a closed port meanwhile and retries
    await receiver.start()
    await pushing

    async def all_present() -> bool:
        return {a["labels"]["alertname"] for a in await receiver.alerts()} == set(names)

    await eventually(all_present, "every alert Alertmanager was given to reach the receiver", 60)
    assert delivered_before_kill >= 1, "the kill came before any delivery: the test proved nothing"
    await receiver.kill()
    events = await read_events(receiver.data_dir)
    assert Counter(kind for _, kind in events) == {"fired": len(names)}


async def test_a_multi_service_burst_becomes_one_correlated_incident(processes: dict[str, Any]) -> None:
    token = "e2e-api-token"
    receiver = processes["receiver"]({"api": {"token": token}})
    await receiver.start()
    am = processes["alertmanager"]()
    await am.start(alertmanager_config(receiver.url + "/api/v1/alerts"))  # grouped by alertname: several notifications
    now = await am.now()
    burst = [
        prom_alert(name, now, namespace="checkout", service=service, severity="warning")
        for name, service in [
            ("E2EHighLatency", "api"),
            ("E2EHighErrorRate", "api"),
            ("E2EPodCrashLooping", "cart"),
            ("E2EHighMemory", "cart"),
            ("E2EQueueBacklog", "worker"),
            ("E2EDiskFilling", "worker"),
        ]
    ]
    burst.append(prom_alert("E2EUnrelated", now, namespace="billing", service="ledger", severity="info"))
    await am.push(burst)
    auth = {"Authorization": f"Bearer {token}"}

    async def correlated() -> dict[str, Any] | None:
        async with receiver.http.get(receiver.url + "/api/v1/incidents", headers=auth) as response:
            listed = (await response.json())["incidents"]
        checkout = [i for i in listed if i["scope"] == "namespace:checkout"]
        return checkout[0] if len(listed) == 2 and len(checkout) == 1 and checkout[0]["alertCount"] == 6 else None

    incident = await eventually(correlated, "one incident for the checkout burst, another for billing", 45)
    assert await am.webhook_deliveries() >= 6, "Alertmanager sent the burst as one notification: nothing to correlate"
    assert incident["services"] == ["checkout/api", "checkout/cart", "checkout/worker"]
    # 6 alerts > 5 across 3 services > 1: a cascade, but of warnings: one level above SEV3, never SEV1
    assert incident["cascade"] is True and incident["severity"] == "SEV2"
    opened = [await receiver.metric("receiver_incidents_total", severity=f"SEV{n}") for n in (1, 2, 3, 4)]
    assert sum(opened) == 2  # each incident counted once, at the severity it opened with: SEV2 when the whole
    # burst came in one batch, lower when Alertmanager's notifications were processed one batch at a time
    url = f"{receiver.url}/api/v1/incidents/{incident['id']}"
    async with receiver.http.post(url + "/ack", json={"actor": "oncall"}, headers=auth) as response:
        assert response.status == 200, await response.text()  # through the engine process's pipe
        assert (await response.json())["status"] == "acknowledged"
    async with receiver.http.post(url + "/resolve", headers=auth) as response:
        assert response.status == 200
    async with receiver.http.post(url + "/resolve", headers=auth) as response:
        assert response.status == 409
    async with receiver.http.post(url + "/ack", headers={"Authorization": "Bearer e2e-token"}) as response:
        assert response.status == 401  # the webhook's token changes nothing
    await receiver.kill()
    await receiver.start()
    async with receiver.http.get(url, headers=auth) as response:
        detail = await response.json()
    assert detail["status"] == "resolved" and len(detail["alerts"]) == 6
    assert [e["actor"] for e in detail["timeline"] if e["kind"] in ("acknowledged", "resolved")] == ["oncall", "api"]
