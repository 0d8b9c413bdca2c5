"""How the SQLite store writes values: times as integer microseconds since the epoch, label sets as sorted JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from receiver.alerts.labels import canonical_json

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def micros(t: datetime) -> int:
    """A time as integer microseconds since the epoch."""
    return (t - _EPOCH) // _MICRO


def opt_micros(t: datetime | None) -> int | None:
    """``micros``, keeping None."""
    return None if t is None else micros(t)


def time(micros: int) -> datetime:
    """The time ``micros`` stands for (UTC)."""
    return _EPOCH + timedelta(microseconds=micros)


def opt_time(micros: int | None) -> datetime | None:
    """``time``, keeping None."""
    return None if micros is None else time(micros)


labels_json = canonical_json
