"""Which Kubernetes permissions each playbook action needs: least privilege, from the playbooks themselves.

A remediation daemon should hold exactly the verbs its playbooks use, on
exactly the resources they touch: a playbook that deletes pods needs
``get`` and ``delete`` on pods, not ``*`` on ``*``. ``needs`` says what one
step needs, from its action and its target's kind, as ``kube.py`` calls the
API (read before write: ``get``, then ``patch`` or ``delete``; a rollback
also lists ReplicaSets). ``of_playbooks`` is the union over every step;
``receiver playbooks rbac`` prints it as the rules of a Role, and the Helm
chart builds the same rules from the playbooks it deploys (a test keeps the
two equal, and another checks every request each action really makes
against this table). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from receiver.playbooks.model import Playbook, Step

RESOURCES: dict[str, tuple[str, str]] = {
    "Pod": ("", "pods"),
    "Service": ("", "services"),
    "Node": ("", "nodes"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "ReplicaSet": ("apps", "replicasets"),
}
"""Kind → (API group, resource)."""
CLUSTER_SCOPED = frozenset({"nodes"})
"""Resources a namespaced Role cannot grant: cordon and uncordon need a ClusterRole for nodes."""


@dataclass(frozen=True, order=True, slots=True)
class Permission:
    """One verb on one resource of one API group."""

    group: str
    resource: str
    verb: str


def needs(action: str, kind: str | None = None) -> frozenset[Permission]:
    """What one step needs: its action on its target's kind (None: the action's only or default kind)."""
    if action in ("wait", "wait_for_resolution", "notify"):
        return frozenset()
    if action == "delete_pod":
        return _on("Pod", "get", "delete")
    if action in ("cordon", "uncordon"):
        return _on("Node", "get", "patch")
    if action == "rollout_undo":
        return _on("Deployment", "get", "patch") | _on("ReplicaSet", "list")
    if action in ("scale", "rollout_restart", "set_env", "annotate", "label"):
        return _on(kind or "Deployment", "get", "patch")
    raise ValueError(f"unknown action {action!r}")


def of_step(step: Step) -> frozenset[Permission]:
    """What one playbook step needs."""
    target = getattr(step, "target", None)
    return needs(step.action, getattr(target, "kind", None))


def of_playbooks(playbooks: Iterable[Playbook]) -> frozenset[Permission]:
    """What all these playbooks need together."""
    found: set[Permission] = set()
    for playbook in playbooks:
        for step in playbook.spec.steps:
            found |= of_step(step)
    return frozenset(found)


def rules(permissions: Iterable[Permission]) -> list[dict[str, list[str]]]:
    """RBAC rules (one per API group and resource, verbs sorted), in a stable order."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for p in permissions:
        verbs.setdefault((p.group, p.resource), set()).add(p.verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(found)}
        for (group, resource), found in sorted(verbs.items())
    ]


def _on(kind: str, *verbs: str) -> frozenset[Permission]:
    group, resource = RESOURCES[kind]
    return frozenset(Permission(group, resource, verb) for verb in verbs)
