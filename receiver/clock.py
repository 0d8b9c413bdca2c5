"""The clock: the one edge that reads the real time.

Decisions take ``now`` as a value; whatever runs them is handed a ``Clock``,
so tests drive time and production passes ``utc_now``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)
