"""The webhook wire format: fingerprints, timestamps, decoding and its errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.alerts.wire import InvalidNotification, Notification, decode, fingerprint, parse_time
from tests.conftest import FIXTURES, fixture_bytes, fixture_json

ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_fingerprint_matches_alertmanager(name: str) -> None:
    for alert in fixture_json(name)["alerts"]:
        assert fingerprint(alert["labels"]) == alert["fingerprint"]


def test_fingerprint_of_empty_label_set_is_the_fnv_offset_basis() -> None:
    assert fingerprint({}) == "cbf29ce484222325"


def test_fingerprint_depends_on_names_and_values_not_order() -> None:
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})
    assert fingerprint({"a": "12"}) != fingerprint({"a1": "2"})  # the 0xFF separator matters
    assert fingerprint({"a": "ü"}) != fingerprint({"a": "u"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T09:22:35Z", datetime(2026, 11, 22, 9, 22, 35, tzinfo=UTC)),
        ("2026-11-22T09:22:35.1Z", datetime(2026, 11, 22, 9, 22, 35, 100000, tzinfo=UTC)),
        ("2026-11-22T09:22:35.123456Z", datetime(2026, 11, 22, 9, 22, 35, 123456, tzinfo=UTC)),
        ("2026-11-22T09:22:35.123456789Z", datetime(2026, 11, 22, 9, 22, 35, 123456, tzinfo=UTC)),
        ("2026-11-22T11:22:35.5+02:00", datetime(2026, 11, 22, 9, 22, 35, 500000, tzinfo=UTC)),
        ("2026-11-22t09:22:35z", datetime(2026, 11, 22, 9, 22, 35, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_parse_time(text: str, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "2026-11-22", "2026-11-22T09:22:35", "2026-11-22T09:22:35.1234567890Z", "2026-13-22T09:22:35Z", 1700000000],
)
def test_parse_time_rejects(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_decode_fixture_with_mixed_statuses() -> None:
    n = decode(fixture_bytes("03-mixed-one-resolved.json"))
    statuses = sorted(a.status for a in n.alerts)
    assert statuses == ["firing", "firing", "resolved"]
    for alert in n.alerts:
        assert (alert.ends_at is None) == (alert.status == "firing")
    assert n.group_key.startswith("{}:")
    assert n.truncated_alerts == 0


def test_ha_peers_decode_to_the_same_alerts() -> None:
    a = decode(fixture_bytes("06-ha-peer-a.json"))
    b = decode(fixture_bytes("06-ha-peer-b.json"))
    assert a.external_url != b.external_url
    assert a.alerts == b.alerts


def _body(**changes: Any) -> dict[str, Any]:
    body = fixture_json("01-firing-higherrorrate.json")
    body.update(changes)
    return body


def _alert_body(**changes: Any) -> dict[str, Any]:
    body = _body()
    body["alerts"][0].update(changes)
    return body


def _without(field: str) -> dict[str, Any]:
    body = _body()
    del body["alerts"][0][field]
    return body


def test_unknown_fields_are_ignored_and_missing_fingerprint_is_computed() -> None:
    body = _body(notification_reason="new", routeLabels={"x": "y"})
    del body["alerts"][0]["fingerprint"]
    body["alerts"][0]["somethingNew"] = [1, 2]
    alert = decode(json.dumps(body).encode()).alerts[0]
    assert alert.fingerprint == fixture_json("01-firing-higherrorrate.json")["alerts"][0]["fingerprint"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"not json", "body", "not valid JSON"),
        (b"[1, 2]", "body", "object"),
        (json.dumps(_body(version="3")).encode(), "version", "'4'"),
        (json.dumps(_body(version=4)).encode(), "version", "'4'"),
        (json.dumps({k: v for k, v in _body().items() if k != "version"}).encode(), "version", "missing"),
        (json.dumps({k: v for k, v in _body().items() if k != "alerts"}).encode(), "alerts", "missing"),
        (json.dumps(_body(alerts={})).encode(), "alerts", "array"),
        (json.dumps(_body(truncatedAlerts=-1)).encode(), "truncatedAlerts", ">= 0"),
        (json.dumps(_body(groupLabels={"a": 1})).encode(), "groupLabels.a", "Expected `str`, got `int`"),
        (json.dumps(_alert_body(status="pending")).encode(), "alerts[0].status", "'firing' or 'resolved'"),
        (json.dumps(_alert_body(labels={})).encode(), "alerts[0].labels", "length >= 1"),
        (json.dumps(_alert_body(labels={"severity": 5})).encode(), "alerts[0].labels.severity", "got `int`"),
        (json.dumps(_alert_body(startsAt="yesterday")).encode(), "alerts[0].startsAt", "RFC 3339"),
        (json.dumps(_alert_body(startsAt="0001-01-01T00:00:00Z")).encode(), "alerts[0].startsAt", "must be set"),
        (json.dumps(_alert_body(endsAt=12)).encode(), "alerts[0].endsAt", "got `int`"),
        (json.dumps(_alert_body(endsAt="2026-11-22T09:00:00Z")).encode(), "alerts[0].endsAt", "before startsAt"),
        (json.dumps(_alert_body(fingerprint="XYZ")).encode(), "alerts[0].fingerprint", "matching regex"),
        (json.dumps(_without("labels")).encode(), "alerts[0].labels", "missing"),
        (json.dumps(_without("startsAt")).encode(), "alerts[0].startsAt", "missing"),
        (json.dumps(_without("status")).encode(), "alerts[0].status", "missing"),
        (json.dumps(_body(status=None)).encode(), "status", "'firing' or 'resolved'"),
        (json.dumps(_body(commonLabels={"status": 1})).encode(), "commonLabels.status", "Expected `str`"),
        (json.dumps(_body(alerts=[1])).encode(), "alerts[0]", "Expected `object`, got `int`"),
        (json.dumps(_body()).encode().replace(b"HighErrorRate", b"High\xffRate"), "body", "not valid JSON"),
    ],
)
def test_decode_errors_name_the_field(body: bytes, field: str, message: str) -> None:
    with pytest.raises(InvalidNotification) as caught:
        decode(body)
    fields = {f: m for f, m in caught.value.problems}
    assert field in fields, caught.value.problems
    assert message in fields[field]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_decode_or_fail_with_a_named_problem(data: bytes) -> None:
    outcome = _decode_or_problems(data)
    if isinstance(outcome, list):
        assert outcome and all(field and message for field, message in outcome)


@settings(max_examples=300, deadline=None)
@given(
    path=st.sampled_from(["", "alerts.0", "alerts.0.labels", "groupLabels"]),
    key=st.text(max_size=12),
    value=_json_values,
)
def test_any_field_replaced_by_any_json_decodes_or_names_a_field(path: str, key: str, value: Any) -> None:
    raw = _body()
    node: Any = raw
    for part in filter(None, path.split(".")):
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[key or "version"] = value
    outcome = _decode_or_problems(json.dumps(raw).encode())
    if isinstance(outcome, list):
        assert outcome and all(field and message for field, message in outcome)
    else:
        assert all(a.labels and a.starts_at.tzinfo is not None for a in outcome.alerts)


def _decode_or_problems(data: bytes) -> Notification | list[tuple[str, str]]:
    """What decode made of ``data``; any exception but InvalidNotification fails the test."""
    try:
        return decode(data)
    except InvalidNotification as err:
        return err.problems
