"""Suppression tables: a database outage makes API latency alerts symptoms, while it fires."""

from __future__ import annotations

import pytest

from receiver.alerts.matchers import parse
from receiver.incidents.suppression import Dependency, FiringRoot, suppression

DEPENDENCIES = (
    Dependency(
        "database takes the API down",
        root=(parse('alertname="DatabaseDown"'),),
        symptoms=(parse('alertname=~"HighLatency|HighErrorRate"'),),
        equal=("namespace",),
    ),
    Dependency(
        "node down", root=(parse('alertname="NodeDown"'),), symptoms=(parse('alertname=~"Kube.*"'),), equal=("node",)
    ),
)
DB_SHOP = FiringRoot("db1", {"alertname": "DatabaseDown", "namespace": "shop", "service": "postgres"})
DB_OTHER = FiringRoot("db2", {"alertname": "DatabaseDown", "namespace": "other"})
NODE = FiringRoot("n1", {"alertname": "NodeDown", "node": "node-7"})


@pytest.mark.parametrize(
    ("labels", "firing", "root", "reason"),
    [
        ({"alertname": "HighLatency", "namespace": "shop", "service": "api"}, [DB_SHOP], "db1", "DatabaseDown"),
        ({"alertname": "HighErrorRate", "namespace": "shop", "service": "web"}, [DB_OTHER, DB_SHOP], "db1", "shop"),
        ({"alertname": "HighLatency", "namespace": "other", "service": "api"}, [DB_SHOP], None, None),  # not equal
        ({"alertname": "HighLatency", "service": "api"}, [DB_SHOP], None, None),  # equal label missing
        ({"alertname": "DiskFull", "namespace": "shop"}, [DB_SHOP], None, None),  # not a listed symptom
        ({"alertname": "HighLatency", "namespace": "shop"}, [], None, None),  # the root cause resolved
        ({"alertname": "KubePodCrashLooping", "node": "node-7"}, [DB_SHOP, NODE], "n1", "node-7"),
        ({"alertname": "KubePodCrashLooping", "node": "node-8"}, [NODE], None, None),
    ],
)
def test_symptoms_of_a_firing_root_cause_are_suppressed(
    labels: dict[str, str], firing: list[FiringRoot], root: str | None, reason: str | None
) -> None:
    found = suppression("fp", labels, firing, DEPENDENCIES)
    assert (found.root if found else None) == root
    if reason is not None:
        assert found is not None and reason in found.reason


def test_a_root_cause_never_suppresses_itself() -> None:
    both = Dependency("self", root=(parse('alertname="X"'),), symptoms=(parse('alertname="X"'),))
    alert = FiringRoot("x1", {"alertname": "X"})
    assert suppression("x1", alert.labels, [alert], [both]) is None
    assert suppression("x2", {"alertname": "X"}, [alert], [both]) is not None


def test_when_the_root_cause_resolves_its_symptoms_are_released() -> None:
    symptom = {"alertname": "HighLatency", "namespace": "shop", "service": "api"}
    assert suppression("s1", symptom, [DB_SHOP], DEPENDENCIES) is not None
    assert suppression("s1", symptom, [DB_OTHER], DEPENDENCIES) is None  # re-evaluated with what still fires
