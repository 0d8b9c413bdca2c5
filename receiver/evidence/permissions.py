"""The Kubernetes permissions evidence needs: read-only, named once, given to the chart as generated data. Pure.

``READS`` is every request a capture may make (a test checks each request
against it): get pods and their logs, list events, get the workloads of an
owner chain, list ReplicaSets (a Deployment's rollouts), get nodes (list
them when an alert names a node by its address: node-exporter's ``instance``), claims,
their storage classes and HPAs. Never Secrets or ConfigMaps. The Helm chart cannot import Python:
``receiver evidence rbac`` prints these rules (namespaced and cluster-scoped)
as ``charts/receiver/files/evidence.yaml``, kept equal by a test, from which
the chart builds its evidence Role or ClusterRole.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml


@dataclass(frozen=True, slots=True)
class Read:
    """One permission evidence needs: a verb on a resource (``pods/log``: a subresource)."""

    group: str
    resource: str
    verb: str


READS = frozenset(
    {
        Read("", "pods", "get"),
        Read("", "pods/log", "get"),
        Read("", "events", "list"),
        Read("", "nodes", "get"),
        Read("", "nodes", "list"),
        Read("", "persistentvolumeclaims", "get"),
        Read("storage.k8s.io", "storageclasses", "get"),
        Read("autoscaling", "horizontalpodautoscalers", "get"),
        Read("apps", "replicasets", "list"),
        Read("apps", "replicasets", "get"),
        Read("apps", "deployments", "get"),
        Read("apps", "statefulsets", "get"),
        Read("apps", "daemonsets", "get"),
        Read("batch", "jobs", "get"),
        Read("batch", "cronjobs", "get"),
    }
)
"""Every permission a capture uses, and nothing else."""
CLUSTER_SCOPED = frozenset({"nodes", "storageclasses"})
COMMAND = "receiver evidence rbac > charts/receiver/files/evidence.yaml"


def rules(reads: frozenset[Read]) -> list[dict[str, list[str]]]:
    """RBAC rules (one per API group and resource, verbs sorted), in a stable order."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for r in reads:
        verbs.setdefault((r.group, r.resource), set()).add(r.verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(found)}
        for (group, resource), found in sorted(verbs.items())
    ]


def table() -> dict[str, list[dict[str, list[str]]]]:
    """The rules, namespaced and cluster-scoped."""
    return {
        "namespaced": rules(frozenset(r for r in READS if r.resource not in CLUSTER_SCOPED)),
        "cluster": rules(frozenset(r for r in READS if r.resource in CLUSTER_SCOPED)),
    }


def table_text() -> str:
    """``table`` as the YAML file the chart reads, with a header saying where it comes from."""
    header = f"# Generated from receiver/evidence/permissions.py by `{COMMAND}`: do not edit.\n"
    return header + yaml.safe_dump(table(), sort_keys=False, default_flow_style=None)
