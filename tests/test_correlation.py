"""Correlation tables: scopes, where a firing alert goes, when an incident resolves, cascades."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receiver.incidents.correlation import (
    CorrelationPolicy,
    CorrelationRule,
    FiringAlert,
    IncidentView,
    Scope,
    is_cascade,
    place,
    scope_of,
    should_resolve,
)

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
POLICY = CorrelationPolicy()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("labels", "rules", "expected"),
    [
        ({"namespace": "shop", "service": "api"}, POLICY.rules, Scope("namespace", ("shop",))),
        ({"cluster": "eu-1"}, POLICY.rules, Scope("cluster", ("eu-1",))),
        ({"namespace": "", "cluster": "eu-1"}, POLICY.rules, Scope("cluster", ("eu-1",))),
        ({"alertname": "X"}, POLICY.rules, Scope("alert", ("fp1",))),
        (
            {"namespace": "shop", "service": "api"},
            (CorrelationRule("svc", ("namespace", "service")),),
            Scope("svc", ("shop", "api")),
        ),
        ({"namespace": "shop"}, (CorrelationRule("svc", ("namespace", "service")),), Scope("alert", ("fp1",))),
    ],
)
def test_the_first_rule_whose_labels_the_alert_carries_gives_its_scope(
    labels: dict[str, str], rules: tuple[CorrelationRule, ...], expected: Scope
) -> None:
    assert scope_of("fp1", labels, CorrelationPolicy(rules=rules)) == expected


KSM = {
    "job": "kube-state-metrics",
    "service": "kube-prometheus-stack-kube-state-metrics",
    "instance": "10.244.1.7:8080",
}
KSM_OWN = {"namespace": "monitoring", "pod": "kube-prometheus-stack-kube-state-metrics-6d8f7c9b5-q2wzx"}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({**KSM, **KSM_OWN, "container": "kube-state-metrics", "node": "w1"}, Scope("node", ("w1",))),
        ({"job": "node-exporter", "instance": "w2", "namespace": "monitoring", "container": "node-exporter"}, None),
        ({**KSM, "namespace": "shop", "pod": "web-7d4b9c6f5-x2x9z", "container": "web"}, Scope("namespace", ("shop",))),
        # a volume's alert carries the kubelet's node: it is the claim's, scoped by its namespace
        (
            {"job": "kubelet", "namespace": "shop", "node": "w1", "persistentvolumeclaim": "data-db-0"},
            Scope("namespace", ("shop",)),
        ),
        # an exporter's own namespace is no scope for a cluster-scoped object: a volume goes by cluster
        (
            {**KSM, **KSM_OWN, "container": "kube-state-metrics", "persistentvolume": "pvc-5b0e", "cluster": "eu-1"},
            Scope("cluster", ("eu-1",)),
        ),
        # a namespaced object's namespace is its own, though kube-state-metrics' pod and container are on it
        (
            {**KSM, **KSM_OWN, "container": "kube-state-metrics", "deployment": "web", "namespace": "shop"},
            Scope("namespace", ("shop",)),
        ),
    ],
)
def test_node_alerts_are_scoped_by_node_never_by_the_exporters_namespace(
    labels: dict[str, str], expected: Scope | None
) -> None:
    assert scope_of("fp1", labels, POLICY) == (expected or Scope("node", ("w2",)))


def incident(name: str, *, firing: int = 0, active: float = 0, resolved: float | None = None) -> IncidentView:
    return IncidentView(name, at(resolved) if resolved is not None else None, at(active), firing)


@pytest.mark.parametrize(
    ("incidents", "now", "action", "target"),
    [
        ([], 0, "open", None),
        ([incident("A", firing=2)], 60, "join", "A"),  # firing: joins however long ago it started
        ([incident("A", firing=0, active=0)], 4, "join", "A"),  # quiet, but within the window
        ([incident("A", firing=0, active=0)], 6, "open", None),  # quiet past the window (about to resolve)
        ([incident("A", resolved=10, active=5)], 30, "reopen", "A"),  # resolved 20 min ago: within 30
        ([incident("A", resolved=10, active=5)], 41, "open", None),  # past the reopen window
        ([incident("A", resolved=10), incident("B", resolved=20)], 25, "reopen", "B"),  # the latest resolved
        ([incident("A", resolved=10), incident("B", firing=1, active=1)], 11, "join", "B"),  # open wins
        ([incident("A", firing=1, active=1), incident("B", firing=3, active=5)], 6, "join", "B"),  # most recent
    ],
)
def test_a_firing_alert_joins_reopens_or_opens(
    incidents: list[IncidentView], now: float, action: str, target: str | None
) -> None:
    placement = place(incidents, at(now), POLICY)
    assert (placement.action, placement.incident) == (action, target)
    assert placement.reason


@pytest.mark.parametrize(
    ("view", "now", "expected"),
    [
        (incident("A", firing=1, active=0), 60, False),  # something fires: never
        (incident("A", firing=0, active=0), 4, False),  # quiet, but not long enough
        (incident("A", firing=0, active=0), 5, True),
        (incident("A", firing=0, active=0, resolved=5), 60, False),  # resolved already
    ],
)
def test_an_incident_resolves_after_the_quiet_period_with_nothing_firing(
    view: IncidentView, now: float, expected: bool
) -> None:
    assert should_resolve(view, at(now), POLICY) is expected


def alerts(count: int, services: int, fired: float = 0) -> list[FiringAlert]:
    return [
        FiringAlert(f"fp{i}", {"service": f"svc{i % services}", "namespace": "shop"}, at(fired)) for i in range(count)
    ]


def exported(count: int) -> list[FiringAlert]:
    """Alerts of one deployment's pods, reported by kube-state-metrics (its service and instance on each)."""
    pods = [f"web-7d4b9c6f5-{s}" for s in ("x2x9z", "k4lzq", "b7tvn", "m2pwd", "r9fhs", "z2xcv")]
    return [FiringAlert(f"fp{i}", {**KSM, "namespace": "shop", "pod": pods[i]}, at(0)) for i in range(count)]


@pytest.mark.parametrize(
    ("firing", "now", "expected"),
    [
        (alerts(6, 2), 1, True),  # more than 5 alerts across more than 1 service
        (alerts(5, 2), 1, False),  # not more than 5
        (alerts(6, 1), 1, False),  # one service only
        (alerts(6, 2, fired=0), 6, False),  # outside the window
        (alerts(3, 2) + alerts(3, 2), 1, False),  # the same fingerprints twice are 3 alerts
        (exported(6), 1, False),  # the exporter's service and pods are no services
    ],
)
def test_a_cascade_is_many_firing_alerts_across_services_within_the_window(
    firing: list[FiringAlert], now: float, expected: bool
) -> None:
    assert is_cascade(firing, at(now), POLICY) is expected
