"""The ``store`` fixture over every backend ``store.backend`` can name, and helpers to feed it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from receiver.alerts.wire import Notification, decode
from receiver.config import Settings, load
from receiver.store import Backend, InboxEntry
from receiver.store.backends import BACKENDS, create
from tests.conftest import T0
from tests.payloads import alert, body

OpenStore = Callable[[], AbstractAsyncContextManager[Backend]]


def at(minutes: float = 0) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def notification(*alerts: dict[str, Any]) -> Notification:
    """A decoded notification of these alerts."""
    return decode(body(*alerts))


def firing(name: str, **labels: str) -> dict[str, Any]:
    """A firing alert named ``name``."""
    return alert(name, **labels)


def resolved(name: str, **labels: str) -> dict[str, Any]:
    """The same alert, resolved."""
    return alert(name, "resolved", **labels)


async def accepted(
    store: Backend, n: Notification | None, minutes: float = 0
) -> tuple[InboxEntry, Notification | None]:
    """Accept a body into the inbox; the entry with its notification, ready for processing."""
    raw = b"{}" if n is None else body()
    seq = await store.accept(raw, at(minutes))
    return InboxEntry(seq, at(minutes), raw), n


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> OpenStore:
    """Opens a store of one backend on the same data each time (to close and reopen it)."""
    settings: Settings = load(None, {}, {"data_dir": str(tmp_path), "store": {"backend": request.param}})

    @asynccontextmanager
    async def opened() -> AsyncIterator[Backend]:
        store = create(settings)
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    return opened


@pytest.fixture
async def store(backend: OpenStore) -> AsyncIterator[Backend]:
    """An open store of one backend, empty."""
    async with backend() as opened:
        yield opened
