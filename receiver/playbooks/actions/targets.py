"""The kinds of object several actions act on: their API resources, their target models, and their grants.

An action on a kind of its own (a PersistentVolumeClaim, say) declares its
resource in its own module; what several actions share lives here, once.
A workload's target may be named by what it owns instead (``owner_of``: a
pod, or an autoscaler), resolved when the step runs (``owners``).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any, Literal

import pydantic

from receiver.cluster import Ref, Resource
from receiver.playbooks.actions.base import Grant, Inputs, Model, Render, Template

POD = Resource("Pod", "", "v1", "pods")
SERVICE = Resource("Service", "", "v1", "services")
NODE = Resource("Node", "", "v1", "nodes", namespaced=False)
DEPLOYMENT = Resource("Deployment", "apps", "v1", "deployments")
STATEFULSET = Resource("StatefulSet", "apps", "v1", "statefulsets")
DAEMONSET = Resource("DaemonSet", "apps", "v1", "daemonsets")
REPLICASET = Resource("ReplicaSet", "apps", "v1", "replicasets")
HPA = Resource("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers")
KINDS = {r.kind: r for r in (POD, SERVICE, NODE, DEPLOYMENT, STATEFULSET, DAEMONSET, REPLICASET, HPA)}
"""Kind → resource, for targets whose kind a step names."""
REACHABLE = {
    "Pod": ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"),
    "HorizontalPodAutoscaler": ("Deployment", "StatefulSet", "ReplicaSet"),
}
"""What ``owner_of`` may lead to: a pod's top controller, or an autoscaler's scale target."""


class Target(Model):
    """A namespaced object; ``namespace`` and ``name`` are templates, checked after rendering."""

    namespace: Template
    name: Template
    kind: str

    def rendered(self, render: Render) -> dict[str, Any]:
        """``{kind, namespace, name}`` rendered and checked."""
        return render.target(self.kind, self.namespace, self.name)


class OwnerOf(Model):
    """The object whose owner a step acts on: a pod (its top controller) or an autoscaler (its scale target)."""

    kind: Literal["Pod", "HorizontalPodAutoscaler"]
    name: Template


class OwnedTarget(Model):
    """A workload named, or found at run time as the owner of a pod or an autoscaler (``owner_of``).

    With ``owner_of``, ``kind`` (when given) is the only kind of owner the step accepts; otherwise every kind
    its action acts on that the object can be owned by.
    """

    namespace: Template
    name: Template | None = None
    owner_of: OwnerOf | None = None
    kind: str

    @pydantic.model_validator(mode="after")
    def _name_or_owner(self) -> OwnedTarget:
        if (self.name is None) == (self.owner_of is None):
            raise ValueError("give exactly one of name and owner_of")
        if self.owner_of is not None and not self.owner_kinds():
            raise ValueError(f"a {self.owner_of.kind} is never owned by a {self.kind}")
        return self

    def owner_kinds(self) -> tuple[str, ...]:
        """The kinds of owner this target accepts (with ``owner_of``)."""
        if self.owner_of is None:
            return ()
        asked = (self.kind,) if "kind" in self.model_fields_set else kinds_of(type(self))
        return tuple(k for k in asked if k in REACHABLE[self.owner_of.kind])

    def rendered(self, render: Render) -> dict[str, Any]:
        """``{kind, namespace, name}``, or ``{namespace, owner_of: {kind, name}, kinds}``, rendered and checked."""
        if self.owner_of is None:
            assert self.name is not None  # the validator above
            return render.target(self.kind, self.namespace, self.name)
        named = render.target(self.owner_of.kind, self.namespace, self.owner_of.name)
        owner = {"kind": named["kind"], "name": named["name"]}
        return {"namespace": named["namespace"], "owner_of": owner, "kinds": list(self.owner_kinds())}


def kinds_of(model: type[Model]) -> tuple[str, ...]:
    """The kinds a target model admits (its ``kind`` field's literal values)."""
    return typing.get_args(model.model_fields["kind"].annotation)


class PodTarget(Target):
    """A pod."""

    kind: Literal["Pod"] = "Pod"


class DeploymentTarget(OwnedTarget):
    """A Deployment (or the Deployment that owns a pod, or that an autoscaler scales)."""

    kind: Literal["Deployment"] = "Deployment"


class WorkloadTarget(OwnedTarget):
    """A Deployment, StatefulSet or DaemonSet (or the one that owns a pod)."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment"


class ScalableTarget(OwnedTarget):
    """A Deployment or StatefulSet (or the one that owns a pod, or that an autoscaler scales)."""

    kind: Literal["Deployment", "StatefulSet"] = "Deployment"


class ObjectTarget(OwnedTarget):
    """Any object annotate and label know about (or the workload that owns a pod)."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Pod", "Service"] = "Deployment"


class HpaTarget(Target):
    """A HorizontalPodAutoscaler."""

    kind: Literal["HorizontalPodAutoscaler"] = "HorizontalPodAutoscaler"


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
SCALABLE = ("Deployment", "StatefulSet")
OBJECTS = ("Deployment", "StatefulSet", "DaemonSet", "Pod", "Service")


def each(kinds: Iterable[str], *verbs: str) -> dict[str, tuple[Grant, ...]]:
    """The same verbs on each kind's own resource, by kind."""
    return {kind: (Grant(KINDS[kind], verbs),) for kind in kinds}


def ref(inputs: Inputs) -> Ref:
    """The object a planned step's ``kind``, ``namespace`` and ``name`` name."""
    return Ref(KINDS[inputs["kind"]], inputs["namespace"], inputs["name"])
