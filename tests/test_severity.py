"""Severity tables: source spellings, ordered rules with thresholds (the seed cases), context modifiers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.alerts.matchers import parse
from receiver.incidents.severity import (
    Classification,
    Context,
    Modifiers,
    Rule,
    Severity,
    Threshold,
    classify,
    modify,
    most_severe,
    source_severity,
)
from tests.corpus import CORPUS, Entry, alert

S1, S2, S3, S4 = Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4
ERRORS = {"alertname": "HighErrorRate", "severity": "warning"}
LATENCY = {"alertname": "HighLatency", "severity": "warning"}

RULES = (
    Rule(
        "5xx rate above 50%",
        S1,
        labels=(parse('alertname="HighErrorRate"'),),
        threshold=Threshold("value", ">", 50),
    ),
    Rule(
        "p95 latency above 3x baseline",
        S2,
        labels=(parse('alertname=~"HighLatency|LatencyP95"'),),
        threshold=Threshold("value", ">", 3, times="baseline"),
    ),
    Rule("payments are always SEV2", S2, labels=(parse('service="payments"'), parse('severity!="info"'))),
    Rule("runbook-less pages", S3, annotations=(parse('runbook_url=""'),), labels=(parse('severity="page"'),)),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("critical", S2),
        ("CRITICAL", S2),
        ("page", S2),
        ("warning", S3),
        ("info", S4),
        ("P0", S1),
        ("p1", S2),
        ("P2", S3),
        ("P3", S4),
        ("SEV1", S1),
        ("sev4", S4),
        ("SEV-1", S1),
        ("sev-3", S3),
        ("SEV_2", S2),
        (" warning ", S3),
        ("P4", None),
        ("SEV5", None),
        ("urgent-ish", None),
        ("", None),
    ],
)
def test_source_severities_are_understood(text: str, expected: Severity | None) -> None:
    assert source_severity(text) == expected


@pytest.mark.parametrize(
    ("labels", "annotations", "severity", "rule", "reason"),
    [
        # seed: 5xx rate above 50% -> SEV1
        (ERRORS, {"value": "63.2"}, S1, "5xx rate above 50%", "value=63.2 > 50"),
        (ERRORS, {"value": "63.2%"}, S1, "5xx rate above 50%", "> 50"),
        (ERRORS, {"value": "50"}, S3, None, "severity='warning'"),
        (ERRORS, {"value": "n/a"}, S3, None, "severity='warning'"),
        (ERRORS, {}, S3, None, "severity='warning'"),
        ({"alertname": "HighErrorRate"}, {"value": "NaN"}, S4, None, "no rule matched"),
        # seed: p95 latency above 3x baseline -> SEV2
        (
            LATENCY,
            {"value": "0.9", "baseline": "0.2"},
            S2,
            "p95 latency above 3x baseline",
            "value=0.9 > 3x baseline=0.2",
        ),
        ({"alertname": "LatencyP95", "severity": "warning"}, {"value": "0.5", "baseline": "0.2"}, S3, None, "severity"),
        (LATENCY, {"value": "0.9"}, S3, None, "severity"),
        # labels and annotations together, order decides
        (
            {"alertname": "HighErrorRate", "service": "payments", "severity": "critical"},
            {"value": "70"},
            S1,
            "5xx rate above 50%",
            "5xx",
        ),
        (
            {"alertname": "Other", "service": "payments", "severity": "critical"},
            {},
            S2,
            "payments are always SEV2",
            "payments",
        ),
        ({"alertname": "Other", "service": "payments", "severity": "info"}, {}, S4, None, "severity='info'"),
        ({"alertname": "X", "severity": "page"}, {}, S3, "runbook-less pages", "runbook-less"),
        ({"alertname": "X", "severity": "page"}, {"runbook_url": "https://r"}, S2, None, "severity='page'"),
        # source severity in another label
        ({"alertname": "X", "priority": "P0"}, {}, S1, None, "priority='P0'"),
        ({"alertname": "X"}, {}, S4, None, "no rule matched"),
    ],
)
def test_classification_follows_rules_then_source_and_says_why(
    labels: dict[str, str], annotations: dict[str, str], severity: Severity, rule: str | None, reason: str
) -> None:
    result = classify(labels, annotations, RULES)
    assert (result.severity, result.rule) == (severity, rule)
    assert reason in result.reason
    assert result.reason.endswith(str(severity))


@pytest.mark.parametrize(
    ("base", "context", "expected", "why"),
    [
        (S2, Context({"environment": "production"}), S2, None),
        (S2, Context({"environment": "staging"}), S3, "environment='staging' -> SEV3"),
        (S2, Context({"env": "dev"}), S4, "env='dev' -> SEV4"),
        (S4, Context({"environment": "staging"}), S4, None),
        (S3, Context({"environment": "unknown-tier"}), S3, None),
        (S3, Context(services=3), S2, "3 services affected -> SEV2"),
        (S3, Context(services=2), S3, None),
        (S1, Context(services=5), S1, None),
        # honest context: one level at most above the worst alert's own severity
        (S2, Context(cascade=True), S1, "cascade -> SEV1"),
        (S3, Context(cascade=True), S2, "cascade -> SEV2 (at most one level above its worst alert's SEV3)"),
        (S4, Context(cascade=True), S3, "cascade -> SEV3"),
        (S3, Context(services=3, cascade=True), S2, "3 services affected -> SEV2"),
        (S3, Context(services=9, cascade=True), S2, "9 services affected -> SEV2"),
        (S3, Context({"environment": "staging"}, services=4), S3, "4 services"),
        (S3, Context({"environment": "staging"}, cascade=True), S3, "cascade -> SEV3"),
    ],
)
def test_context_moves_severity_and_records_each_move(
    base: Severity, context: Context, expected: Severity, why: str | None
) -> None:
    start = Classification(base, ("from the rules",))
    result = modify(start, context, Modifiers())
    assert result.severity == expected
    assert result.reasons[0] == "from the rules"
    if why is None:
        assert result == start
    else:
        assert why in result.reason


@pytest.mark.parametrize(
    ("base", "cap", "expected"),
    [(S4, S3, S3), (S3, S3, S3), (S2, S3, S2), (S3, S2, S2), (S2, S2, S2), (S4, S1, S3)],
)
def test_a_cascade_goes_to_its_configured_severity_at_most_and_one_level_at_most(
    base: Severity, cap: Severity, expected: Severity
) -> None:
    result = modify(Classification(base, ("own",)), Context(cascade=True), Modifiers(cascade_severity=cap))
    assert result.severity == expected


@pytest.mark.parametrize(
    "entry", [e for e in CORPUS if e.severity != "critical"], ids=lambda e: f"{e.name}-{e.variant or e.severity}"
)
def test_kube_prometheus_warnings_and_infos_are_never_sev1_whatever_the_context(entry: Entry) -> None:
    found = alert(entry.name, variant=entry.variant)
    own = classify(found.labels, found.annotations)
    assert own.severity == {"warning": S3, "info": S4, "none": S4}[entry.severity]
    for services in range(10):
        for cascade in (False, True):
            result = modify(own, Context(found.labels, services, cascade), Modifiers())
            assert result.severity in (own.severity, own.severity.shifted(-1)), result.reason
            assert result.severity > S1


@pytest.mark.parametrize("entry", [e for e in CORPUS if e.severity == "critical"], ids=lambda e: e.name)
def test_kube_prometheus_criticals_are_sev2_and_sev1_in_a_cascade(entry: Entry) -> None:
    found = alert(entry.name, variant=entry.variant)
    own = classify(found.labels, found.annotations)
    assert (own.severity, own.reason) == (S2, "label severity='critical' -> SEV2")
    assert modify(own, Context(found.labels, 1, cascade=True), Modifiers()).severity is S1


def test_an_incident_is_as_severe_as_its_worst_alert() -> None:
    alerts = [Classification(S3, ("a",)), Classification(S1, ("b",)), Classification(S1, ("c",))]
    assert most_severe(alerts) == Classification(S1, ("b",))
    with pytest.raises(ValueError, match="no classification"):
        most_severe([])


@given(
    labels=st.dictionaries(st.sampled_from(["alertname", "severity", "priority", "service"]), st.text(max_size=8)),
    annotations=st.dictionaries(st.sampled_from(["value", "baseline", "runbook_url"]), st.text(max_size=8)),
    services=st.integers(min_value=0, max_value=10),
    cascade=st.booleans(),
)
def test_every_classification_has_a_severity_in_range_and_a_reason(
    labels: dict[str, str], annotations: dict[str, str], services: int, cascade: bool
) -> None:
    own = classify(labels, annotations, RULES)
    result = modify(own, Context(labels, services, cascade), Modifiers())
    assert Severity.SEV1 <= result.severity <= Severity.SEV4
    assert result.reasons and all(result.reasons)
    assert result.severity >= own.severity.shifted(-1)  # the context moves one level at most
    if cascade and own.severity is Severity.SEV2 and not any(labels.get(n) for n in ("environment", "env", "tier")):
        assert result.severity is Severity.SEV1
