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

import msgspec

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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # the offset moves it before year 1 or after year 9999
        raise ValueError(f"{value!r} is outside years 1 to 9999 in UTC") from None


def _required_time_text(value: str) -> datetime:
    parsed = _parse_time_text(value)
    if parsed is None:
        raise ValueError("must be set (got Go's zero time)")
    return parsed


TOO_DEEP = "nested too deeply"
MAX_COUNT = 2**53
"""The largest count a notification may carry: exact as a JSON number anywhere, and within what the store holds."""
_FINGERPRINT = r"^[0-9a-f]{16}\Z"  # \Z: "$" would admit a trailing newline
_LabelSet = dict[str, str]
_LITERAL_FIELDS = re.compile(r"^(?:version|status|alerts\[\d+\]\.status)$")
_LITERALS = {"version": "'4'", "status": "'firing' or 'resolved'"}
"""Fields with a fixed set of values, and the message a wrong value gets."""


class _WireAlert(msgspec.Struct, frozen=True):
    status: Literal["firing", "resolved"]
    labels: Annotated[_LabelSet, msgspec.Meta(min_length=1)]
    startsAt: str
    annotations: _LabelSet = {}
    endsAt: str | None = None
    generatorURL: str = ""
    fingerprint: Annotated[str, msgspec.Meta(pattern=_FINGERPRINT)] | None = None


_Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]


class _WireNotification(msgspec.Struct, frozen=True):
    version: Literal["4"]
    alerts: list[_WireAlert]
    status: Literal["firing", "resolved"] = "firing"
    receiver: str = ""
    groupKey: str = ""
    groupLabels: _LabelSet = {}
    commonLabels: _LabelSet = {}
    commonAnnotations: _LabelSet = {}
    externalURL: str = ""
    truncatedAlerts: _Count | Annotated[float, msgspec.Meta(ge=0, le=MAX_COUNT)] = 0
    """A count; ``3.0`` is the number 3 in JSON, as JSON Schema's ``integer`` says."""


_DECODER = msgspec.json.Decoder(_WireNotification)


@dataclass(frozen=True, slots=True)
class Valid:
    """A webhook body that passed every check, not yet turned into a ``Notification``.

    The web process only needs to know that a body is valid, and a few facts
    for its answer and its logs; building the Notification costs about as
    much as validating, so whoever processes the body does it.
    """

    wire: _WireNotification
    times: tuple[tuple[datetime, datetime | None], ...]
    """(startsAt, endsAt) of each alert, parsed."""

    @property
    def alert_count(self) -> int:
        """How many alerts the notification carries."""
        return len(self.wire.alerts)

    @property
    def group_key(self) -> str:
        """Alertmanager's key of the alert group."""
        return self.wire.groupKey

    def notification(self) -> Notification:
        """The notification as the rest of the daemon sees it."""
        wire = self.wire
        return Notification(
            receiver=wire.receiver,
            status=wire.status,
            alerts=tuple(_alert(a, starts, ends) for a, (starts, ends) in zip(wire.alerts, self.times, strict=True)),
            group_key=wire.groupKey,
            group_labels=wire.groupLabels,
            common_labels=wire.commonLabels,
            common_annotations=wire.commonAnnotations,
            external_url=wire.externalURL,
            truncated_alerts=int(wire.truncatedAlerts),
        )


def decode(body: bytes) -> Notification:
    """Decode and validate a webhook body. Raises InvalidNotification. Pure."""
    return validate(body).notification()


def validate(body: bytes) -> Valid:
    """Check a webhook body completely, without building its Notification. Raises InvalidNotification. Pure."""
    try:
        wire = _DECODER.decode(body)
    except RecursionError:  # msgspec stops at Python's recursion limit, in ignored fields too
        raise InvalidNotification([("body", TOO_DEEP)]) from None
    except msgspec.ValidationError as err:
        raise InvalidNotification([_problem(str(err), body)]) from None
    except msgspec.DecodeError as err:
        reason = str(err).removeprefix("JSON is malformed: ")
        raise InvalidNotification([("body", f"not valid JSON: {reason}")]) from None
    except UnicodeDecodeError as err:  # JSON text is UTF-8; the inbox stores it as such
        raise InvalidNotification([("body", f"not valid JSON: not UTF-8 at byte {err.start}")]) from None
    problems: list[tuple[str, str]] = []
    if isinstance(wire.truncatedAlerts, float) and not wire.truncatedAlerts.is_integer():
        problems.append(("truncatedAlerts", "must be a whole number"))
    times = tuple(_times(a, i, problems) for i, a in enumerate(wire.alerts))
    if problems:
        raise InvalidNotification(problems)
    return Valid(wire, times)  # type: ignore[arg-type]  # no None left once there are no problems


def _times(wire: _WireAlert, index: int, problems: list[tuple[str, str]]) -> tuple[datetime, datetime | None] | None:
    """(startsAt, endsAt) of alert ``index``, or None with what is wrong with them added to ``problems``."""
    starts = ends = None
    try:  # both are strings already: straight to the cached parser
        starts = _required_time_text(wire.startsAt)
    except ValueError as err:
        problems.append((f"alerts[{index}].startsAt", str(err)))
    try:
        ends = _parse_time_text(wire.endsAt) if wire.endsAt is not None else None
    except ValueError as err:
        problems.append((f"alerts[{index}].endsAt", str(err)))
    if starts is None:
        return None
    if ends is not None and ends < starts:
        problems.append((f"alerts[{index}].endsAt", "must not be before startsAt"))
        return None
    return starts, ends


def _alert(wire: _WireAlert, starts: datetime, ends: datetime | None) -> Alert:
    return Alert(
        status=wire.status,
        labels=wire.labels,
        annotations=wire.annotations,
        starts_at=starts,
        ends_at=ends,
        generator_url=wire.generatorURL,
        fingerprint=wire.fingerprint or fingerprint(wire.labels),
    )


_MSGSPEC_ERROR = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _problem(error: str, body: bytes) -> tuple[str, str]:
    """(field path, message) from msgspec's ``Expected `str`, got `int` - at `$.alerts[0].status```."""
    match = _MSGSPEC_ERROR.match(error)
    assert match is not None  # the pattern matches any text
    message, path = match["message"], (match["path"] or "").lstrip(".")
    if missing := _MISSING.match(message):
        return _join(path, missing["field"]), "required field is missing"
    if path.endswith("[...]"):  # a value in a label set: msgspec does not say which key
        path = _offending_key(body, path.removesuffix("[...]"))
    if _LITERAL_FIELDS.match(path):
        return path, f"must be {_LITERALS[path.rsplit('.', 1)[-1]]}"
    return path or "body", message


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _offending_key(body: bytes, path: str) -> str:
    """``path`` to a label set, made precise: the first key whose value is not a string.

    The body is decoded again, untyped, to find the key; that decoding need not
    see what the typed one saw (a duplicate key keeps its last value there, its
    first may be the one that failed), so when the path leads nowhere the answer
    is ``path`` itself.
    """
    try:  # the typed decoder stops at the first problem, so the rest of the body may be malformed
        node: Any = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return path
    for part in re.findall(r"[^.\[\]]+", path):
        node = _child(node, part)
    if not isinstance(node, dict):
        return path
    bad = next((key for key, value in node.items() if not isinstance(value, str)), None)
    return path if bad is None else _join(path, bad)


def _child(node: Any, part: str) -> Any:
    """``node[part]`` (an index into a list, a key into an object), or None when there is no such child."""
    if isinstance(node, list):
        return node[int(part)] if part.isdigit() and int(part) < len(node) else None
    return node.get(part) if isinstance(node, dict) else None
