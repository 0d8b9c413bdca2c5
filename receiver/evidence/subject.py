"""What an alert is about, from its labels: the object whose state an on-call person would look at. Pure.

kube-prometheus-stack's alerts name their subject with labels: a pod alert
``namespace``/``pod``/``container``; a workload alert ``deployment``,
``statefulset``, ``daemonset`` or ``job_name``; a volume alert
``persistentvolumeclaim``; an HPA alert ``horizontalpodautoscaler``; a node
alert ``node``. They also carry the scrape target's own identity (``job``,
``instance``, ``service``, and for kube-state-metrics the exporter's own
``namespace``/``pod``/``container``): the incidents' subject policy
(``receiver.incidents.subject.subject_labels``, configured under
``incidents.subject``) takes it away first, so ``KubeNodeNotReady`` is about
its node, never about kube-state-metrics' pod, and a node-exporter alert
names its node. What evidence reads is then chosen here, the most specific
object first. Labels are untrusted: a name that is not a valid Kubernetes
name is left out, with the reason, before any request is made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from receiver.incidents.subject import SubjectPolicy, subject_labels
from receiver.playbooks.templating import UnsafeValue, dns1123_label, dns1123_subdomain

WORKLOAD_LABELS = (
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("job_name", "Job"),
)
"""Labels that name a workload, and its kind."""


@dataclass(frozen=True, slots=True)
class Subject:
    """What to capture: every name is a valid Kubernetes name (the invalid ones are in ``refused``)."""

    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    workload: tuple[str, str] | None = None
    """(kind, name) named by the alert itself (a pod's owners are found through the API)."""
    node: str | None = None
    claim: str | None = None
    """A PersistentVolumeClaim."""
    hpa: str | None = None
    refused: tuple[str, ...] = ()
    """Why a label was not used (not a valid name)."""

    @property
    def empty(self) -> bool:
        """Nothing to read (and nothing refused to say so)."""
        return not (self.pod or self.workload or self.node or self.claim or self.hpa or self.refused)

    def describe(self) -> str:
        """``Pod shop/web-1``: the subject, for the summary line."""
        ns = f"{self.namespace}/" if self.namespace else ""
        if self.claim:
            return f"PersistentVolumeClaim {ns}{self.claim}"
        if self.hpa:
            return f"HorizontalPodAutoscaler {ns}{self.hpa}"
        if self.pod:
            return f"Pod {ns}{self.pod}"
        if self.workload:
            return f"{self.workload[0]} {ns}{self.workload[1]}"
        return f"Node {self.node}" if self.node else "nothing"


def subject_of(labels: Mapping[str, str], policy: SubjectPolicy) -> Subject:
    """What to read for an alert: a claim, an HPA, a workload, a pod, a node, the first it names once the
    exporter's identity is taken away (``policy``). Pure."""
    refused: list[str] = []
    labels = subject_labels(labels, policy)

    def name(key: str, label: bool = False) -> str | None:
        value = labels.get(key)
        if not value:
            return None
        try:
            return dns1123_label(value, key) if label else dns1123_subdomain(value, key)
        except UnsafeValue as err:
            refused.append(f"label {err}")
            return None

    namespace = name("namespace", label=True)
    claim = name("persistentvolumeclaim") if namespace else None
    hpa = name("horizontalpodautoscaler") if namespace and not claim else None
    workload = _workload(name) if namespace and not (claim or hpa) else None
    pod = name("pod") if namespace and not (claim or hpa) else None
    container = name("container", label=True) if pod else None
    node = name("node") if not (claim or hpa or workload or pod) else None
    if node:  # cluster-scoped: the namespace label is the exporter's
        namespace = None
    return Subject(namespace, pod, container, workload, node, claim, hpa, tuple(refused))


def _workload(name: Callable[[str], str | None]) -> tuple[str, str] | None:
    for key, kind in WORKLOAD_LABELS:
        found = name(key)
        if found:
            return kind, found
    return None
