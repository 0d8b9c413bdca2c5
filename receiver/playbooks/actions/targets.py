"""The kinds of object several actions act on: their API resources, their target models, and their grants.

An action on a kind of its own (a HorizontalPodAutoscaler, say) declares its
resource in its own module; what several actions share lives here, once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from receiver.cluster import Ref, Resource
from receiver.playbooks.actions.base import Grant, Inputs, Model, Render, Template

POD = Resource("Pod", "", "v1", "pods")
SERVICE = Resource("Service", "", "v1", "services")
NODE = Resource("Node", "", "v1", "nodes", namespaced=False)
DEPLOYMENT = Resource("Deployment", "apps", "v1", "deployments")
STATEFULSET = Resource("StatefulSet", "apps", "v1", "statefulsets")
DAEMONSET = Resource("DaemonSet", "apps", "v1", "daemonsets")
REPLICASET = Resource("ReplicaSet", "apps", "v1", "replicasets")
KINDS = {r.kind: r for r in (POD, SERVICE, NODE, DEPLOYMENT, STATEFULSET, DAEMONSET, REPLICASET)}
"""Kind → resource, for targets whose kind a step names."""


class Target(Model):
    """A namespaced object; ``namespace`` and ``name`` are templates, checked after rendering."""

    namespace: Template
    name: Template
    kind: str

    def rendered(self, render: Render) -> dict[str, Any]:
        """``{kind, namespace, name}`` rendered and checked."""
        return render.target(self.kind, self.namespace, self.name)


class PodTarget(Target):
    """A pod."""

    kind: Literal["Pod"] = "Pod"


class DeploymentTarget(Target):
    """A Deployment."""

    kind: Literal["Deployment"] = "Deployment"


class WorkloadTarget(Target):
    """A Deployment, StatefulSet or DaemonSet."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"


class ScalableTarget(Target):
    """A Deployment or StatefulSet."""

    kind: Literal["Deployment", "StatefulSet"] = "Deployment"


class ObjectTarget(Target):
    """Any object annotate and label know about."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Pod", "Service"] = "Deployment"


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
SCALABLE = ("Deployment", "StatefulSet")
OBJECTS = ("Deployment", "StatefulSet", "DaemonSet", "Pod", "Service")


def each(kinds: Iterable[str], *verbs: str) -> dict[str, tuple[Grant, ...]]:
    """The same verbs on each kind's own resource, by kind."""
    return {kind: (Grant(KINDS[kind], verbs),) for kind in kinds}


def ref(inputs: Inputs) -> Ref:
    """The object a planned step's ``kind``, ``namespace`` and ``name`` name."""
    return Ref(KINDS[inputs["kind"]], inputs["namespace"], inputs["name"])
