"""The chart's alerts on the daemon's health, evaluated by a real Prometheus scraping a real ``receiver serve``.

promtool checks the rules' syntax and their logic on made-up series; this
checks them against the metrics the daemon really exports: every metric a
rule names exists in a real scrape, every rule evaluates without error, a
webhook refused for its token makes ReceiverWebhookRejected pending, and a
receiver that is gone makes ReceiverDown pending.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.e2e.harness import eventually
from tests.test_chart import NAMESPACE, RELEASE, VALUE_SETS, manifests, one

JOB = f"{RELEASE}-receiver"


async def test_the_charts_alerts_work_on_the_daemons_real_metrics(
    processes: dict[str, Callable[..., Any]], http: aiohttp.ClientSession
) -> None:
    rules = one(manifests(VALUE_SETS["monitoring-on"]), "PrometheusRule")["spec"]
    # a channel configured (never used here): its sent/failed series exist from the start, as in a cluster
    mail = {"type": "email", "host": "127.0.0.1", "security": "none", "sender": "rx@example.com", "to": ["a@x.example"]}
    # a schedule configured: the engine's coverage check at its start exports its gap seconds
    rotation = {"participants": ["alice"], "shift": "weekly", "start": "2020-01-06T09:00"}
    oncall = {
        "people": {"alice": {"timezone": "UTC"}},
        "schedules": {"primary": {"timezone": "UTC", "layers": [{"rotations": [rotation]}]}},
    }
    receiver = processes["receiver"]({"notify": {"channels": {"email": mail}}, "oncall": oncall})
    await receiver.start()
    prometheus = processes["prometheus"]()
    await prometheus.start(JOB, f"127.0.0.1:{receiver.port}", {"namespace": NAMESPACE}, rules)

    async def up() -> bool:
        found = await prometheus.api("query", query=f'up{{job="{JOB}",namespace="{NAMESPACE}"}} == 1')
        return bool(found["result"])

    await eventually(up, "Prometheus to scrape the receiver", 30)
    named = {m for g in rules["groups"] for r in g["rules"] for m in re.findall(r"\breceiver_\w+", r["expr"])}
    assert named

    lacking: set[str] = set()

    async def all_exported() -> bool:  # the coverage check's series comes once the engine has started
        lacking.clear()
        lacking.update(named - set(await prometheus.api("label/__name__/values")))
        return not lacking

    try:
        await eventually(all_exported, "every metric the rules name in a scrape", 30)
    except AssertionError:
        raise AssertionError(f"rules name metrics the daemon does not export: {lacking}") from None

    for _ in range(3):  # Alertmanager with the wrong token
        async with http.post(
            receiver.url + "/api/v1/alerts", json={}, headers={"Authorization": "Bearer wrong"}
        ) as response:
            assert response.status == 401

    async def state(alert: str) -> str | None:
        groups = (await prometheus.api("rules", type="alert"))["groups"]
        found = {r["name"]: r for g in groups for r in g["rules"]}
        assert all(r["health"] in ("ok", "unknown") for r in found.values()), found
        return found[alert]["state"] if found[alert]["state"] != "inactive" else None

    assert await eventually(lambda: state("ReceiverWebhookRejected"), "ReceiverWebhookRejected", 30) == "pending"
    assert await state("ReceiverDown") is None
    await receiver.kill()
    assert await eventually(lambda: state("ReceiverDown"), "ReceiverDown after the receiver died", 30) == "pending"
