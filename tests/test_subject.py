"""Subject tables: what an alert is about once the exporter that measured it is taken away.

The label sets here show the mechanism (which labels are the exporter's, which the subject's); the alerts
kube-prometheus really raises go through the same code in tests/test_scenarios.py, from the corpus.
"""

from __future__ import annotations

import pytest

from receiver.alerts.regex import compile_anchored
from receiver.incidents.subject import Subject, SubjectPolicy, is_exporter, subject_labels, subject_of, workload_of_pod

POLICY = SubjectPolicy()
KSM = {
    "job": "kube-state-metrics",
    "instance": "10.244.1.7:8080",
    "endpoint": "http",
    "service": "kube-prometheus-stack-kube-state-metrics",
}
KSM_OWN = {"namespace": "monitoring", "pod": "kube-prometheus-stack-kube-state-metrics-6d8f7c9b5-q2wzx"}


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("web-7d4b9c6f5-x2x9z", "web"),  # Deployment: ReplicaSet's pod-template-hash, then the pod's suffix
        ("checkout-api-5c8d7b6f9d-kq4lz", "checkout-api"),
        ("db-0", "db"),  # StatefulSet ordinal
        ("kafka-broker-12", "kafka-broker"),
        ("node-exporter-2xk9p", "node-exporter"),  # DaemonSet
        ("migrate-x7kq2", "migrate"),  # Job
        ("backup-28391520-x7kq2", "backup"),  # CronJob's Job
        ("web-proxy", "web-proxy"),  # 'proxy' has vowels: Kubernetes never generates it
        ("standalone", "standalone"),
    ],
)
def test_a_pods_workload_is_its_name_without_the_controllers_suffix(pod: str, workload: str) -> None:
    assert workload_of_pod(pod) == workload


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # kube-state-metrics about a pod: the pod and namespace are the subject's (honorLabels), the target is not
        (
            {**KSM, "namespace": "shop", "pod": "web-7d4b9c6f5-x2x9z", "container": "web"},
            Subject("workload", "web", "shop"),
        ),
        (
            {**KSM, **KSM_OWN, "container": "kube-state-metrics", "deployment": "web", "namespace": "shop"},
            Subject("deployment", "web", "shop"),
        ),
        (
            {**KSM, **KSM_OWN, "container": "kube-state-metrics", "persistentvolume": "pvc-5b0e"},
            Subject("persistentvolume", "pvc-5b0e"),
        ),
        # kube-state-metrics about a node: its own namespace, pod and container stay on the alert
        ({**KSM, **KSM_OWN, "container": "kube-state-metrics", "node": "worker-1"}, Subject("node", "worker-1")),
        # node-exporter: the instance is the node
        (
            {
                "job": "node-exporter",
                "instance": "worker-2",
                "namespace": "monitoring",
                "pod": "kube-prometheus-stack-prometheus-node-exporter-2xk9p",
                "container": "node-exporter",
                "service": "kube-prometheus-stack-prometheus-node-exporter",
            },
            Subject("node", "worker-2"),
        ),
        ({"job": "node-exporter", "instance": "10.0.0.5:9100"}, Subject("node", "10.0.0.5")),
        # the kubelet about a volume: the claim, not the node it is mounted on
        (
            {"job": "kubelet", "namespace": "shop", "node": "worker-1", "persistentvolumeclaim": "data-db-0"},
            Subject("persistentvolumeclaim", "data-db-0", "shop"),
        ),
        # an application's own metrics: its service is its own
        ({"job": "checkout", "namespace": "shop", "service": "checkout"}, Subject("service", "checkout", "shop")),
        # an exporter's service names no subject
        ({**KSM, "namespace": "monitoring"}, None),
        ({"job": "kubelet", "namespace": "kube-system", "service": "kube-prometheus-stack-kubelet"}, None),
        ({"workload": "web", "workload_type": "deployment", "namespace": "shop"}, Subject("deployment", "web", "shop")),
        ({"alertname": "KubeAPIErrorBudgetBurn"}, None),
    ],
)
def test_the_subject_is_what_the_alert_is_about_never_the_exporter(
    labels: dict[str, str], expected: Subject | None
) -> None:
    assert subject_of(labels, POLICY) == expected


def test_a_subject_key_joins_a_workload_its_pods_and_its_autoscaler() -> None:
    keys = {
        subject.key
        for labels in (
            {"namespace": "shop", "deployment": "web"},
            {"namespace": "shop", "pod": "web-7d4b9c6f5-x2x9z"},
            {"namespace": "shop", "horizontalpodautoscaler": "web"},
        )
        if (subject := subject_of(labels, POLICY)) is not None
    }
    assert keys == {"shop/web"}
    assert str(Subject("node", "worker-1")) == "node/worker-1"
    assert str(Subject("deployment", "web", "shop")) == "deployment shop/web"


def test_exporters_are_known_by_job_or_service_and_are_configurable() -> None:
    assert is_exporter({"job": "kube-prometheus-stack-prometheus"}, POLICY)
    assert is_exporter({"service": "kube-prometheus-stack-kube-state-metrics"}, POLICY)
    assert not is_exporter({"job": "checkout", "service": "checkout"}, POLICY)
    mine = SubjectPolicy(exporters=(compile_anchored("checkout"),))
    own = subject_labels({"job": "checkout", "service": "checkout", "namespace": "shop"}, mine)
    assert own == {"namespace": "shop"}


def test_the_subject_labels_are_configurable_and_ordered() -> None:
    labels = {"namespace": "shop", "pod": "web-7d4b9c6f5-x2x9z", "deployment": "web"}
    assert subject_of(labels, SubjectPolicy(labels=("pod", "deployment"))) == Subject("workload", "web", "shop")
    assert subject_of(labels, SubjectPolicy(labels=("service",))) is None
