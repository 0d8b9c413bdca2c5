"""``store.backend`` chooses the backend: every value the setting takes has one, and an unknown one is refused."""

from __future__ import annotations

import asyncio
import typing
from pathlib import Path

import pytest

from receiver import config
from receiver.store import backends
from receiver.store.sqlite import SQLiteStore


def test_every_value_of_the_setting_has_a_backend_and_no_other() -> None:
    setting = typing.get_type_hints(config.StoreSettings)["backend"]
    assert set(typing.get_args(setting)) == set(backends.BACKENDS)


def test_an_unknown_backend_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(None, {}, {"data_dir": str(tmp_path), "store": {"backend": "mysql"}})
    problems = dict(caught.value.problems)
    assert "store.backend" in problems and "'sqlite'" in problems["store.backend"]
    settings = config.load(None, {}, {"data_dir": str(tmp_path)})
    unchecked = settings.model_copy(update={"store": settings.store.model_copy(update={"backend": "mysql"})})
    with pytest.raises(backends.UnknownBackend, match=r"store\.backend: 'mysql'"):
        backends.create(unchecked)


def test_sqlite_is_the_default(tmp_path: Path) -> None:
    store = backends.create(config.load(None, {}, {"data_dir": str(tmp_path)}), role="web")
    assert isinstance(store, SQLiteStore)


@pytest.mark.parametrize("name", sorted(backends.BACKENDS))
async def test_one_engine_holds_the_lock_and_the_next_waits_until_it_lets_go(name: str, tmp_path: Path) -> None:
    settings = config.load(None, {}, {"data_dir": str(tmp_path), "store": {"backend": name}})
    order: list[str] = []
    first_holds = asyncio.Event()

    async def engine(who: str, hold: asyncio.Event | None) -> None:
        async with backends.engine_lock(settings):
            order.append(f"{who} in")
            first_holds.set()
            if hold is not None:
                await hold.wait()
            order.append(f"{who} out")

    let_go = asyncio.Event()
    first = asyncio.create_task(engine("first", let_go))
    await asyncio.wait_for(first_holds.wait(), 10)
    second = asyncio.create_task(engine("second", None))
    for _ in range(20):  # the second keeps waiting while the first holds the lock
        await asyncio.sleep(0)
    assert order == ["first in"]
    let_go.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert order == ["first in", "first out", "second in", "second out"]
