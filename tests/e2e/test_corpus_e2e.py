"""A real Alertmanager 0.25, configured by the corpus' alertmanager.yml, sends what ``payload()`` builds.

Corpus alerts are pushed as Prometheus pushes them; the bodies Alertmanager posts to a webhook on loopback
are compared, field by field, with ``payload()`` for the same groups: the default route's namespace groups,
Watchdog's route of its own, the dispatcher's order, fingerprints, common labels and annotations.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.corpus import alert, alertmanager_config, payload, prometheus_alert
from tests.e2e.harness import eventually, free_port


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook on loopback that keeps every body it is sent."""
    bodies: list[dict[str, Any]] = []

    async def keep(request: web.Request) -> web.Response:
        bodies.append(json.loads(await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", keep)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook", bodies
    finally:
        await runner.cleanup()


async def test_alertmanager_sends_exactly_the_bodies_payload_builds(
    processes: dict[str, Any], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, bodies = webhook
    config = yaml.safe_load(alertmanager_config(url))
    config["route"]["group_wait"] = "1s"  # the chart's 30s, shortened: the wait is not what is tested
    am = processes["alertmanager"]()
    await am.start(config)
    started = datetime.fromtimestamp(await am.now(), UTC)
    shop = [alert("KubePodCrashLooping", pod="web-7d4b9c6f5-b"), alert("KubePodCrashLooping", pod="web-7d4b9c6f5-a")]
    shop += [alert("KubeDeploymentRolloutStuck"), alert("KubePersistentVolumeFillingUp", variant="warning")]
    node = [alert("KubeNodeNotReady"), alert("NodeFilesystemAlmostOutOfSpace", variant="warning")]
    watchdog = [alert("Watchdog")]
    await am.push([prometheus_alert(a, starts_at=started) for a in shop + node + watchdog])

    async def three_groups() -> dict[str, dict[str, Any]]:
        by_key = {b["groupKey"]: b for b in bodies}
        return by_key if len(by_key) == 3 else {}

    received = await eventually(three_groups, "Alertmanager's three group notifications")
    for group in (shop, node, watchdog):
        built = payload(group, starts_at=started)
        sent = received[built["groupKey"]]
        assert sent["externalURL"].startswith("http://")  # Alertmanager's own URL, not the chart's service
        assert {**sent, "externalURL": built["externalURL"]} == built
