"""Durations in settings and playbooks: ``30s``, ``5m``, ``1h30m``, ``7d``, ``1w``, ``250ms`` or seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import pydantic

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(value: object) -> timedelta:
    """Parse ``90``/``1.5`` (seconds) or Prometheus-style ``1w``, ``7d``, ``1h30m``, ``5m``, ``10s``, ``250ms``."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 30s, 5m, 1h or 7d, or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())) and any(m.groups()):
        w, d, h, mins, s, ms = (int(g or 0) for g in m.groups())
        seconds = ((w * 7 + d) * 24 + h) * 3600 + mins * 60 + s + ms / 1000
    else:
        raise ValueError(f"{value!r} is not a duration like 30s, 5m, 1h or 7d")
    if seconds <= 0:
        raise ValueError("must be positive")
    return timedelta(seconds=seconds)


Duration = Annotated[
    timedelta,
    pydantic.PlainValidator(parse_duration),
    pydantic.PlainSerializer(lambda d: d.total_seconds(), return_type=float),  # read back by parse_duration
]
