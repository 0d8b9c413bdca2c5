"""The clock: the one edge that reads the real time.

Decisions take ``now`` as a value; whatever runs them is handed a ``Clock``,
so tests drive time and production passes ``utc_now``. A clock that must
cross into the engine process is one of the describable kinds here (the
real one, a fixed instant, the real time shifted by an offset): it travels
as text on the engine's command line (``--clock fixed:2026-11-22T09:30:00+00:00``),
because a function cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FixedClock:
    """Always the same instant: a test's time that a process boundary keeps."""

    at: datetime

    def __call__(self) -> datetime:
        return self.at


@dataclass(frozen=True, slots=True)
class OffsetClock:
    """The real time shifted by ``offset``: the daemon living ahead of (or behind) the machine."""

    offset: timedelta

    def __call__(self) -> datetime:
        return utc_now() + self.offset


class UndescribableClock(ValueError):
    """A clock that cannot be written down for another process (an arbitrary function)."""


def describe(clock: Clock) -> str | None:
    """The text another process rebuilds ``clock`` from; None for the real clock. Pure."""
    if clock is utc_now:
        return None
    if isinstance(clock, FixedClock):
        return f"fixed:{clock.at.isoformat()}"
    if isinstance(clock, OffsetClock):
        return f"offset:{clock.offset.total_seconds()!r}"
    raise UndescribableClock(f"{clock!r} cannot cross into another process: use FixedClock or OffsetClock")


def parse(text: str) -> Clock:
    """The clock ``describe`` wrote. ValueError names what is wrong. Pure."""
    kind, _, value = text.partition(":")
    if kind == "fixed":
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError(f"clock {text!r}: the instant needs a UTC offset")
        return FixedClock(at)
    if kind == "offset":
        return OffsetClock(timedelta(seconds=float(value)))
    raise ValueError(f"clock {text!r}: expected fixed:<ISO 8601 instant> or offset:<seconds>")
