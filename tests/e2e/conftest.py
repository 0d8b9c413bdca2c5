"""Fixtures that start real processes and always stop them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.harness import Alertmanager, DelayProxy, Prometheus, Receiver


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this directory is marked ``e2e`` (a ``pytestmark`` in a conftest marks nothing)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
async def processes(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[dict[str, Callable[..., Any]]]:
    """Factories for receivers, Alertmanagers and proxies, all closed at the end."""
    made: list[Receiver | Alertmanager | DelayProxy | Prometheus] = []

    def receiver(settings: dict[str, Any] | None = None) -> Receiver:
        r = Receiver(tmp_path, http, settings)
        made.append(r)
        return r

    def alertmanager(name: str = "am") -> Alertmanager:
        am = Alertmanager(tmp_path, http, name)
        made.append(am)
        return am

    def proxy(target: str, delay: float) -> DelayProxy:
        p = DelayProxy(target, delay, http)
        made.append(p)
        return p

    def prometheus() -> Prometheus:
        p = Prometheus(tmp_path, http)
        made.append(p)
        return p

    yield {"receiver": receiver, "alertmanager": alertmanager, "proxy": proxy, "prometheus": prometheus}
    for thing in reversed(made):
        await thing.close()
