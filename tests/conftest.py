"""Shared test helpers: fixtures on disk, a settable clock, a settings factory."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from receiver import config
from receiver.notify.channel import Io
from receiver.notify.http import Http
from receiver.store.sqlite import SQLiteStore

FIXTURES = Path(__file__).parent / "fixtures" / "alertmanager-0.25"
T0 = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def fixture_bytes(name: str) -> bytes:
    """A captured Alertmanager webhook body."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict[str, Any]:
    """A captured Alertmanager webhook body, parsed."""
    data: dict[str, Any] = json.loads(fixture_bytes(name))
    return data


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., config.Settings]:
    """Settings with the data directory under the test's tmp_path."""

    def make(**raw: Any) -> config.Settings:
        raw.setdefault("data_dir", str(tmp_path / "data"))
        return config.load(None, {}, raw)

    return make


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open SQLite store in a fresh directory."""
    s = SQLiteStore(tmp_path / "r.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for tests that talk to real servers on loopback (the receiver, Alertmanager, the fakes);
    every request bounded."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
async def io(clock: Clock) -> AsyncIterator[Io]:
    """What a notification channel sends through: the channels' HTTP client (bounded) and the test's clock."""
    async with Http(timeout=5) as http:
        yield Io(http, clock)
