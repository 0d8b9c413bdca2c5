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
from tests.corpus import CorpusAlert, alert

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


NODE = "ip-10-0-1-12.ec2.internal"
VOLUME = {"namespace": "shop", "persistentvolumeclaim": "data-db-0"}


@pytest.mark.parametrize(
    ("corpus", "expected"),
    [
        # kube-state-metrics' node alerts carry its own namespace="monitoring", pod and container
        (alert("KubeNodeNotReady", node=NODE), Scope("node", (NODE,))),
        (alert("KubeNodeUnreachable", node=NODE), Scope("node", (NODE,))),
        (alert("KubeletTooManyPods", node=NODE), Scope("node", (NODE,))),
        # node-exporter's: the node is its instance, without the port
        (alert("NodeFilesystemSpaceFillingUp", variant="critical"), Scope("node", ("10.0.1.12",))),
        (alert("KubePodCrashLooping", namespace="shop"), Scope("namespace", ("shop",))),
        # a namespaced object's namespace is its own, though kube-state-metrics' pod and container are on it
        (alert("KubeDeploymentReplicasMismatch", namespace="shop"), Scope("namespace", ("shop",))),
        # a volume's alert carries the kubelet's node: it is the claim's, scoped by its namespace
        (alert("KubePersistentVolumeFillingUp", variant="warning", node=NODE, **VOLUME), Scope("namespace", ("shop",))),
        # an exporter's own namespace is no scope for a cluster-scoped object: a persistent volume's is its own
        (alert("KubePersistentVolumeErrors"), Scope("alert", ("fp1",))),
        (alert("Watchdog"), Scope("alert", ("fp1",))),
    ],
    ids=lambda v: v.name if isinstance(v, CorpusAlert) else "",
)
def test_node_alerts_are_scoped_by_node_never_by_the_exporters_namespace(corpus: CorpusAlert, expected: Scope) -> None:
    assert scope_of("fp1", corpus.labels, POLICY) == expected


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
    """KubePodCrashLooping of one deployment's pods and CPUThrottlingHigh (kube-state-metrics', the kubelet's)."""
    pods = [f"web-7d4b9c6f5-{s}" for s in ("x2x9z", "k4lzq", "b7tvn", "m2pwd", "r9fhs", "z2xcv")]
    names = ("KubePodCrashLooping", "CPUThrottlingHigh")
    found = [alert(names[i % 2], namespace="shop", pod=pods[i]) for i in range(count)]
    return [FiringAlert(f"fp{i}", a.labels, at(0)) for i, a in enumerate(found)]


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
