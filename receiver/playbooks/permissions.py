"""Which Kubernetes permissions each playbook action needs: least privilege, from the playbooks themselves.

A remediation daemon should hold exactly the verbs its playbooks use, on
exactly the resources they touch: a playbook that deletes pods needs
``get`` and ``delete`` on pods, not ``*`` on ``*``. Each action declares
what it needs per target kind (``receiver/playbooks/actions/``, read before
write: ``get``, then ``patch`` or ``delete``; a rollback also lists
ReplicaSets; a target named by what it owns, ``owner_of``, also reads the
chain of owners and may act on each kind of owner the step accepts, see
``actions/owners.py``); ``needs`` looks one step up, ``of_playbooks`` is the union
over every step, and ``receiver playbooks rbac`` prints it as the rules of a
Role. The Helm chart cannot import Python: ``chart_table`` is the same
knowledge as data (``charts/receiver/files/actions.yaml``, written by
``receiver playbooks rbac --chart-table``, kept equal by a test), from which
the chart builds the same rules for the playbooks it deploys. Another test
checks every request each action really makes against these needs. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from receiver.playbooks import actions
from receiver.playbooks.actions import owners
from receiver.playbooks.actions.base import Action, Permission
from receiver.playbooks.actions.targets import OwnedTarget
from receiver.playbooks.model import Playbook, Step

__all__ = ["CHART_TABLE_COMMAND", "CLUSTER_SCOPED", "Permission", "chart_table", "needs", "of_playbooks", "rules"]
CLUSTER_SCOPED = frozenset(
    g.resource.plural
    for a in actions.ACTIONS
    for grants in a.grants.values()
    for g in grants
    if not g.resource.namespaced
)
"""Resources a namespaced Role cannot grant (nodes for cordon, storage classes for expand_pvc: a ClusterRole)."""
CHART_TABLE_COMMAND = "receiver playbooks rbac --chart-table > charts/receiver/files/actions.yaml"


def needs(action: str, kind: str | None = None) -> frozenset[Permission]:
    """What one step needs: its action on its target's kind (None: the action's only or default kind)."""
    found = actions.find(action)
    if found is None:
        raise ValueError(f"unknown action {action!r}")
    return found.needs(kind)


def of_step(step: Step) -> frozenset[Permission]:
    """What one playbook step needs."""
    target = getattr(step, "target", None)
    if isinstance(target, OwnedTarget) and target.owner_of is not None:
        return owners.needs(actions.BY_NAME[step.action], target.owner_of.kind, target.owner_kinds())
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


def chart_table() -> dict[str, Any]:
    """What the chart needs to know of every action, as data: its default kind, its rules per kind, the kinds of
    owner it accepts per kind ``owner_of`` may name (``owners``); and the rules of resolving an owner (``resolve``).
    """
    table: dict[str, Any] = {}
    for action in actions.ACTIONS:
        entry: dict[str, Any] = {}
        if action.grants:
            entry["default"] = action.default_kind
            entry["kinds"] = {kind: rules(action.needs(kind)) for kind in sorted(action.grants)}
        if found := owners.owner_kinds(action):
            entry["owners"] = {of: list(kinds) for of, kinds in sorted(found.items())}
        table[action.name] = entry
    cluster = {f"{p.group}|{p.resource}" for a in actions.ACTIONS for p in _all(a) if p.resource in CLUSTER_SCOPED}
    resolve = {of: rules(owners.resolving(of)) for of in sorted(owners.RESOLVE)}
    return {"actions": table, "resolve": resolve, "clusterScoped": sorted(cluster)}


def chart_table_text() -> str:
    """``chart_table`` as the YAML file the chart reads, with a header saying where it comes from."""
    header = f"# Generated from receiver/playbooks/actions/ by `{CHART_TABLE_COMMAND}`: do not edit.\n"
    return header + yaml.safe_dump(chart_table(), sort_keys=False, default_flow_style=None)


def _all(action: Action) -> frozenset[Permission]:
    return frozenset().union(*(action.needs(kind) for kind in action.grants))
