"""The one place a store backend is chosen: ``store.backend`` names it.

The web process and the engine process both open their store here, so the
setting means the same in both. Adding a backend (PostgreSQL) is one entry
in ``BACKENDS``, one value of the setting, and passing ``tests/store_contract``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from receiver.config import Settings
from receiver.store import Backend
from receiver.store.sqlite import SQLiteStore, ignore_commit
from receiver.store.sqlite_lock import engine_lock as sqlite_engine_lock
from receiver.store.sqlite_lock import serve_lock as sqlite_serve_lock
from receiver.store.sqlite_writer import OnCommit

Role = Literal["all", "web", "engine"]
"""Which process the store serves: one doing everything, the web process (it appends to the inbox), or the
engine process (it writes the state and never the inbox)."""
Make = Callable[[Settings, Role, OnCommit], Backend]
Lock = Callable[[Settings], AbstractAsyncContextManager[None]]
ServeLock = Callable[[Settings], AbstractContextManager[None]]


@dataclass(frozen=True, slots=True)
class Kind:
    """A backend: how to open its store, and how an engine becomes the one that writes."""

    make: Make
    engine_lock: Lock
    """Held by the engine process while it works; a second engine waits in it."""
    serve_lock: ServeLock
    """Held by ``receiver serve`` from before it listens until it exits; a second one on the same store gets
    ``InUse`` and does not start (a backend whose replicas may all accept would hold nothing)."""


class UnknownBackend(ValueError):
    """``store.backend`` names no backend this receiver has."""


def _sqlite(settings: Settings, role: Role, on_commit: OnCommit) -> Backend:
    return SQLiteStore(
        settings.database_path,
        synchronous=settings.store.synchronous,
        busy_timeout=settings.store.busy_timeout,
        max_batch=settings.store.max_batch,
        on_commit=on_commit,
        role=role,
    )


BACKENDS: Mapping[str, Kind] = {
    "sqlite": Kind(_sqlite, lambda s: sqlite_engine_lock(s.database_path), lambda s: sqlite_serve_lock(s.database_path))
}


def create(settings: Settings, *, role: Role = "all", on_commit: OnCommit = ignore_commit) -> Backend:
    """The backend ``settings.store.backend`` names, not opened yet (``await open()`` it)."""
    return _kind(settings).make(settings, role, on_commit)


def engine_lock(settings: Settings) -> AbstractAsyncContextManager[None]:
    """The lock the one working engine holds, as the chosen backend keeps it."""
    return _kind(settings).engine_lock(settings)


def serve_lock(settings: Settings) -> AbstractContextManager[None]:
    """The lock ``receiver serve`` holds while it serves the store (``InUse`` when another one holds it)."""
    return _kind(settings).serve_lock(settings)


def _kind(settings: Settings) -> Kind:
    kind = BACKENDS.get(settings.store.backend)
    if kind is None:
        known = ", ".join(sorted(BACKENDS))
        raise UnknownBackend(f"store.backend: {settings.store.backend!r} is not a store backend (known: {known})")
    return kind
