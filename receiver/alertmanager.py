"""Alertmanager's webhook wire format (version 4): decode, validate, fingerprint.

Everything the daemon knows about an incoming notification passes through
``decode``. It is strict about what a receiver relies on (types, required
fields, the version, timestamps) and lenient about what it does not use
(unknown fields are ignored, so newer Alertmanagers keep working). The result
is a tree of frozen values; nothing downstream ever sees raw JSON.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pydantic

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = 0xFF

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?P<frac>\.\d{1,9})?(?P<tz>[Zz]|[+-]\d{2}:\d{2})$")
# Go's zero time.Time, which Alertmanager writes for "not set".
_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class InvalidNotification(ValueError):
    """The request body is not a valid webhook notification.

    ``problems`` pairs a field path (``alerts[0].startsAt``) with what is wrong
    with it, so the sender can be told exactly which part to fix.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in problems))


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as Alertmanager last described it."""

    status: Literal["firing", "resolved"]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Notification:
    """One webhook delivery: a group of alerts and the group's context."""

    receiver: str
    status: str
    alerts: tuple[Alert, ...]
    group_key: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    truncated_alerts: int


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's label-set fingerprint: FNV-1a 64 over sorted names and values.

    Each name and each value is followed by the byte 0xFF, exactly as
    prometheus/common's ``model.LabelSet.Fingerprint`` does. Pure.
    """
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & _MASK64
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & _MASK64
    return f"{h:016x}"


def parse_time(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp with 0 to 9 fractional digits into UTC.

    Go's zero time (``0001-01-01T00:00:00Z``) means "unset" and gives None.
    Nanoseconds are truncated to microseconds, Python's resolution. Pure.
    """
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string")
    return _parse_time_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_time_text(value: str) -> datetime | None:
    # Cached: the alerts of a group share their timestamps, and every firing
    # alert carries the same zero endsAt. Errors are raised, never cached.
    match = _RFC3339.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
    frac = match["frac"] or ""
    text = value[: match.start("frac")] if frac else value[: match.start("tz")]
    text += frac[:7] + ("+00:00" if match["tz"] in "Zz" else match["tz"])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a valid date and time") from err
    if parsed == _GO_ZERO_TIME:
        return None
    return parsed.astimezone(UTC)


def _required_time(value: object) -> datetime:
    parsed = parse_time(value)
    if parsed is None:
        raise ValueError("must be set (got Go's zero time)")
    return parsed


_Time = Annotated[datetime | None, pydantic.PlainValidator(parse_time)]
_RequiredTime = Annotated[datetime, pydantic.PlainValidator(_required_time)]
_LabelSet = dict[str, str]


class _WireModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True, extra="ignore", populate_by_name=False)


class _WireAlert(_WireModel):
    status: Literal["firing", "resolved"]
    labels: Annotated[_LabelSet, pydantic.Field(min_length=1)]
    annotations: _LabelSet = {}
    startsAt: _RequiredTime
    endsAt: _Time = None
    generatorURL: str = ""
    fingerprint: Annotated[str, pydantic.Field(pattern=r"^[0-9a-f]{16}$")] | None = None

    @pydantic.field_validator("endsAt")
    @classmethod
    def _ends_after_start(cls, ends: datetime | None, info: pydantic.ValidationInfo) -> datetime | None:
        starts = info.data.get("startsAt")
        if ends is not None and starts is not None and ends < starts:
            raise ValueError("must not be before startsAt")
        return ends


class _WireNotification(_WireModel):
    version: Literal["4"]
    alerts: list[_WireAlert]
    status: Literal["firing", "resolved"] = "firing"
    receiver: str = ""
    groupKey: str = ""
    groupLabels: _LabelSet = {}
    commonLabels: _LabelSet = {}
    commonAnnotations: _LabelSet = {}
    externalURL: str = ""
    truncatedAlerts: Annotated[int, pydantic.Field(ge=0)] = 0


def decode(body: bytes) -> Notification:
    """Decode and validate a webhook body. Raises InvalidNotification. Pure."""
    try:
        wire = _WireNotification.model_validate_json(body)
    except pydantic.ValidationError as err:
        raise InvalidNotification(_problems(err)) from None
    return Notification(
        receiver=wire.receiver,
        status=wire.status,
        alerts=tuple(_alert(a) for a in wire.alerts),
        group_key=wire.groupKey,
        group_labels=wire.groupLabels,
        common_labels=wire.commonLabels,
        common_annotations=wire.commonAnnotations,
        external_url=wire.externalURL,
        truncated_alerts=wire.truncatedAlerts,
    )


def _alert(wire: _WireAlert) -> Alert:
    return Alert(
        status=wire.status,
        labels=wire.labels,
        annotations=wire.annotations,
        starts_at=wire.startsAt,
        ends_at=wire.endsAt,
        generator_url=wire.generatorURL,
        fingerprint=wire.fingerprint or fingerprint(wire.labels),
    )


def _problems(err: pydantic.ValidationError) -> list[tuple[str, str]]:
    return [(_field_path(e["loc"]) or "body", _message(e)) for e in err.errors()]


def _message(error: Any) -> str:
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "json_invalid":
        return "not valid JSON"
    message: str = error["msg"]
    return message.removeprefix("Value error, ")


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path
