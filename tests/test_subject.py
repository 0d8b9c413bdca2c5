"""Subject tables: what an alert is about once the exporter that measured it is taken away.

Every corpus alert (kube-prometheus-stack's rules, labels as Alertmanager delivers them) and its subject;
hand-written labels only where the test is about configuration or an application's own alerts.
"""

from __future__ import annotations

import pytest

from receiver.alerts.regex import compile_anchored
from receiver.incidents.subject import Subject, SubjectPolicy, is_exporter, subject_labels, subject_of, workload_of_pod
from tests.corpus import CORPUS, CorpusAlert, Entry, alert

POLICY = SubjectPolicy()
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


NODE = "ip-10-0-1-12.ec2.internal"


@pytest.mark.parametrize(
    ("corpus", "expected"),
    [
        # kube-state-metrics about a pod: the pod and namespace are the subject's (honorLabels), the target is not
        (alert("KubePodCrashLooping", namespace="shop", pod="web-7d4b9c6f5-x2x9z"), Subject("workload", "web", "shop")),
        (alert("KubePodNotReady", namespace="shop", pod="db-0"), Subject("workload", "db", "shop")),
        (alert("KubeContainerWaiting"), Subject("workload", "web", "shop")),
        (alert("KubeDeploymentReplicasMismatch"), Subject("deployment", "web", "shop")),
        (alert("KubeDeploymentRolloutStuck"), Subject("deployment", "web", "shop")),
        (alert("KubeStatefulSetReplicasMismatch"), Subject("statefulset", "db", "shop")),
        (alert("KubeDaemonSetRolloutStuck"), Subject("daemonset", "fluent-bit", "logging")),
        (alert("KubeJobFailed"), Subject("cronjob", "nightly-report", "shop")),  # a CronJob's run
        (alert("KubeJobFailed", job_name="db-migrate-7"), Subject("job_name", "db-migrate-7", "shop")),
        (alert("KubeHpaMaxedOut"), Subject("horizontalpodautoscaler", "web", "shop")),
        (alert("KubePdbNotEnoughHealthyPods"), Subject("poddisruptionbudget", "web", "shop")),
        (alert("KubeQuotaExceeded"), Subject("resourcequota", "compute", "shop")),
        (alert("KubeNodePressure"), Subject("node", NODE)),
        (alert("NodeMemoryHighUtilization"), Subject("node", "10.0.1.12")),
        # the kubelet about a volume: the claim, not the node it is mounted on
        (
            alert("KubePersistentVolumeFillingUp", variant="critical"),
            Subject("persistentvolumeclaim", "data-db-0", "shop"),
        ),
        (alert("KubePersistentVolumeErrors"), Subject("persistentvolume", "pvc-5b0e7c2a-3f4d-4e8a-9b6c-1d2e3f4a5b6c")),
        # kube-state-metrics about a node: its own namespace, pod and container stay on the alert
        (alert("KubeNodeNotReady", node=NODE), Subject("node", NODE)),
        (alert("KubeNodeUnreachable", node=NODE), Subject("node", NODE)),
        (alert("KubeletTooManyPods", node=NODE), Subject("node", NODE)),
        # node-exporter: the instance is the node
        (alert("NodeFilesystemSpaceFillingUp", variant="warning"), Subject("node", "10.0.1.12")),
        (alert("NodeFilesystemAlmostOutOfSpace", variant="critical"), Subject("node", "10.0.1.12")),
        # the kubelet's cAdvisor about a container
        (alert("CPUThrottlingHigh"), Subject("workload", "web", "shop")),
        # an application's own target: its service is its own; an exporter's names no subject
        (alert("TargetDown"), Subject("service", "checkout", "shop")),
        (
            alert("TargetDown", job="kube-state-metrics", service="kube-prometheus-stack-kube-state-metrics"),
            None,
        ),
        # Prometheus and Alertmanager about themselves: their own pods
        (
            alert("PrometheusRuleFailures"),
            Subject("workload", "prometheus-kube-prometheus-stack-prometheus", "monitoring"),
        ),
        (
            alert("AlertmanagerFailedToSendAlerts"),
            Subject("workload", "alertmanager-kube-prometheus-stack-alertmanager", "monitoring"),
        ),
        (alert("KubeCPUOvercommit"), None),
        (alert("Watchdog"), None),
    ],
    ids=lambda v: v.name if isinstance(v, CorpusAlert) else "",
)
def test_the_subject_is_what_the_alert_is_about_never_the_exporter(
    corpus: CorpusAlert, expected: Subject | None
) -> None:
    assert subject_of(corpus.labels, POLICY) == expected


@pytest.mark.parametrize("entry", CORPUS, ids=lambda e: f"{e.name}-{e.variant}" if e.variant else e.name)
def test_no_corpus_alert_has_its_exporter_for_subject(entry: Entry) -> None:
    labels = alert(entry.name, variant=entry.variant).labels
    subject = subject_of(labels, POLICY)
    exported = is_exporter(labels, POLICY)  # else its job and service are its own (an application's target)
    exporter = {labels.get("job"), labels.get("service")} if exported else set()
    if exported and labels.get("container") in POLICY.exporter_containers:
        exporter.add(workload_of_pod(labels["pod"]))
    assert subject is None or subject.name not in exporter
    if subject is not None and exported and subject.namespace == "monitoring":
        assert labels["alertname"].startswith(("Prometheus", "Alertmanager"))  # the monitoring stack's own


def test_an_application_alert_names_its_workload_by_its_kind() -> None:
    labels = {"workload": "web", "workload_type": "deployment", "namespace": "shop"}
    assert subject_of(labels, POLICY) == Subject("deployment", "web", "shop")


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
