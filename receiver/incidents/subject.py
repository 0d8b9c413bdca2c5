"""Subject: what an alert is about (a workload, a node, a service), not the exporter that measured it.

In kube-prometheus, most alerts are computed from series an *exporter*
reports about other objects: kube-state-metrics about pods, deployments and
nodes, the kubelet about volumes, node-exporter about its host. Prometheus
attaches the scrape target's labels to every series: ``job``, ``instance``,
``endpoint``, ``service`` name the exporter (``kube-state-metrics``,
``kubelet``...), and for objects without a namespace of their own (a node)
the exporter's ``namespace``, ``pod`` and ``container`` stay on the alert
too, so ``KubeNodeNotReady`` carries ``namespace="monitoring"``. Counting
those as the affected service or scope makes every kube-state-metrics alert
one "service" and groups node trouble with the monitoring stack.

``subject_labels`` takes the exporter's identity away; ``subject_of`` then
reads the first configured label the alert still carries (``deployment``,
``statefulset``, ..., ``node``, ``pod``, ``service``) as its subject. A pod's
name loses its controller's suffix (``web-7d4b9c6f5-x2x9z`` is ``web``,
``db-0`` is ``db``), so a crash-looping pod and its deployment's rollout
alert are one subject; a CronJob's Job (``nightly-report-29350080``) is its
CronJob, whichever run failed. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from receiver.alerts.regex import Regex, compile_anchored

DEFAULT_LABELS = (
    "deployment",
    "statefulset",
    "daemonset",
    "workload",
    "job_name",
    "cronjob",
    "horizontalpodautoscaler",
    "poddisruptionbudget",
    "persistentvolumeclaim",
    "persistentvolume",
    "resourcequota",
    "node",
    "pod",
    "service",
)
"""The labels that name a subject, first found first: workloads, then the node, the pod, an explicit service."""
DEFAULT_EXPORTERS = (
    "kube-state-metrics",
    "kubelet",
    "node-exporter",
    "apiserver",
    "kubernetes",
    "coredns",
    "kube-dns",
    "kube-proxy",
    "kube-etcd",
    "kube-scheduler",
    "kube-controller-manager",
    ".+-kube-state-metrics",
    ".+-kubelet",
    ".+-prometheus-node-exporter",
    ".+-coredns",
    ".+-kube-proxy",
    ".+-kube-etcd",
    ".+-kube-scheduler",
    ".+-kube-controller-manager",
    ".+-operator",
    ".+-prometheus",
    ".+-alertmanager",
    "prometheus-operated",
    "alertmanager-operated",
)
"""kube-prometheus-stack's scrape targets (``job`` or ``service`` values, RE2, anchored): their target labels
name the exporter, not the subject."""
TARGET_LABELS = ("job", "instance", "endpoint", "service", "metrics_path")
"""The labels a ServiceMonitor attaches that identify the scrape target."""
_NAME = "[bcdfghjklmnpqrstvwxz2456789]"
"""The alphabet Kubernetes generates names' suffixes from (no vowels: no words)."""
_REPLICASET_POD = re.compile(rf"^(.+)-{_NAME}{{6,10}}-{_NAME}{{5}}$")
_GENERATED_POD = re.compile(rf"^(.+)-{_NAME}{{5}}$")
_ORDINAL = re.compile(r"^(.+)-\d+$")
_SCHEDULED_JOB = re.compile(r"^(.+)-\d{8,}$")
"""A CronJob's Job: its name and the scheduled time in minutes since the epoch (8 digits until the year 2160)."""


@dataclass(frozen=True, slots=True)
class SubjectPolicy:
    """How an alert's subject is found; from the configuration (``incidents.subject``)."""

    labels: tuple[str, ...] = DEFAULT_LABELS
    exporters: tuple[Regex, ...] = tuple(compile_anchored(p) for p in DEFAULT_EXPORTERS)
    """An alert whose ``job`` or ``service`` matches one of these was measured by an exporter."""
    exporter_containers: frozenset[str] = frozenset({"kube-state-metrics", "node-exporter"})
    """An exporter's own container: when ``container`` is one of these, ``pod``/``container`` are the exporter's
    (and ``namespace`` too when the subject has none: a node alert from kube-state-metrics)."""
    node_instance_jobs: frozenset[str] = frozenset({"node-exporter"})
    """Jobs whose ``instance`` is the node (node-exporter's, relabelled to the node's name by the chart)."""
    cluster_scoped: frozenset[str] = frozenset({"node", "persistentvolume"})
    """Subject labels of objects with no namespace."""


@dataclass(frozen=True, slots=True)
class Subject:
    """What an alert is about: the label it was read from, its name, and its namespace (empty: cluster-scoped)."""

    kind: str
    name: str
    namespace: str = ""

    @property
    def key(self) -> str:
        """What counts as one affected service: ``shop/web`` (a deployment, its pods, its HPA), ``node/worker-1``."""
        return f"{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind} {self.key}" if self.namespace else self.key


def is_exporter(labels: Mapping[str, str], policy: SubjectPolicy) -> bool:
    """Whether the alert was measured by one of the exporters (its ``job`` or ``service`` says so). Pure."""
    values = [v for v in (labels.get("job", ""), labels.get("service", "")) if v]
    return any(pattern.fullmatch(v) for pattern in policy.exporters for v in values)


def subject_labels(labels: Mapping[str, str], policy: SubjectPolicy) -> dict[str, str]:
    """The alert's labels without the exporter's identity, and with ``node`` where the exporter's host is it. Pure.

    An alert not measured by a listed exporter (an application's own metrics) keeps every label: its
    ``service`` is its own. One measured by an exporter loses the target's labels; when its ``container``
    is the exporter's own, so are its ``pod`` and ``container``, and its ``namespace`` too if what it is
    about has none (a node: kube-state-metrics' ``namespace="monitoring"``). A namespaced object's
    ``namespace`` is its own (kube-state-metrics' series keep their object's labels).
    """
    if not is_exporter(labels, policy):
        return dict(labels)
    result = {k: v for k, v in labels.items() if k not in TARGET_LABELS}
    own = labels.get("container", "") in policy.exporter_containers
    if own:
        result.pop("pod", None)
        result.pop("container", None)
    job, instance = labels.get("job", ""), labels.get("instance", "")
    if job in policy.node_instance_jobs and instance and not result.get("node"):
        result["node"] = _host(instance)
    first = next((name for name in policy.labels if result.get(name)), None)
    if own and first in policy.cluster_scoped:
        result.pop("namespace", None)
    return result


def subject_of(labels: Mapping[str, str], policy: SubjectPolicy) -> Subject | None:
    """The alert's subject: the first of the policy's labels it carries once the exporter is taken away. Pure."""
    own = subject_labels(labels, policy)
    for name in policy.labels:
        value = own.get(name, "")
        if not value:
            continue
        namespace = "" if name in policy.cluster_scoped else own.get("namespace", "")
        if name == "pod":
            return Subject("workload", workload_of_pod(value), namespace)
        if name == "workload":
            return Subject(own.get("workload_type", "") or "workload", value, namespace)
        if name == "job_name" and (m := _SCHEDULED_JOB.match(value)):
            return Subject("cronjob", m[1], namespace)
        return Subject(name, value, namespace)
    return None


def workload_of_pod(pod: str) -> str:
    """The name of the controller a pod's name was generated from (``web-7d4b9c6f5-x2x9z`` -> ``web``). Pure.

    A ReplicaSet's pod ends in the pod-template hash and a random suffix; a DaemonSet's or a Job's in a
    random suffix (a CronJob's Job adds its schedule's number: ``backup-28391520-x7kq2`` is ``backup``); a
    StatefulSet's in its ordinal (``db-0`` is ``db``). A name none of them fits is its own workload.
    """
    if m := _REPLICASET_POD.match(pod):
        return m[1]
    if m := _GENERATED_POD.match(pod):
        pod = m[1]
    if m := _ORDINAL.match(pod):
        return m[1]
    return pod


def _host(instance: str) -> str:
    """``10.0.0.5:9100`` -> ``10.0.0.5``, ``worker-1`` -> ``worker-1``, ``[::1]:9100`` -> ``::1``."""
    if instance.startswith("["):
        return instance[1:].split("]", 1)[0]
    host, sep, port = instance.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else instance
