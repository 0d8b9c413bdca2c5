"""The registry of actions is the one list: the schema, the plan, ``playbooks rbac``, the chart and the metrics agree.

Each action's ``example`` step goes through everything that depends on the
registry; a test fails when one of them disagrees with it, and the chart's
generated table says how to regenerate it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from receiver import cli
from receiver.engine import runner
from receiver.metrics import Metrics
from receiver.playbooks import actions, permissions
from receiver.playbooks.actions import owners
from receiver.playbooks.actions.base import Action, NamespacePolicy
from receiver.playbooks.model import Playbook, load_dirs, load_file, schema
from receiver.playbooks.plan import AlertFacts, plan
from tests.test_chart import CHART, manifests, remediation_roles
from tests.test_kube import NOW

ROOT = Path(__file__).resolve().parent.parent
TABLE = CHART / "files" / "actions.yaml"
ALERT = AlertFacts("0123456789abcdef", "firing", {"alertname": "X", "node": "node-1", "pod": "cart-1"}, {}, NOW)
EACH = pytest.mark.parametrize("action", actions.ACTIONS, ids=[a.name for a in actions.ACTIONS])


def playbook(name: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "receiver/v1",
        "kind": "Playbook",
        "metadata": {"name": name},
        "spec": {"trigger": {"alertname": "X"}, "steps": [{"name": f"s{i}"} | s for i, s in enumerate(steps)]},
    }


def example(action: Action) -> dict[str, Any]:
    return playbook(action.name.replace("_", "-"), dict(action.example))


def needed(action: Action) -> frozenset[permissions.Permission]:
    """What the action's example step needs: on its target's kind, or resolving an owner and acting on each kind
    of owner it accepts (``owner_of``)."""
    target = action.example.get("target", {})
    if "owner_of" not in target:
        return action.needs(target.get("kind"))
    of = target["owner_of"]["kind"]
    return owners.needs(action, of, [target["kind"]] if "kind" in target else owners.owner_kinds(action)[of])


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    file = tmp_path / f"{document['metadata']['name']}.yaml"
    file.write_text(yaml.safe_dump(document))
    return file


@EACH
def test_every_action_has_an_example_the_model_and_the_plan_accept(action: Action, tmp_path: Path) -> None:
    assert action.example.get("action") == action.name
    loaded = load_file(write(tmp_path, example(action)))
    assert isinstance(loaded, Playbook), loaded
    planned = plan(loaded, ALERT, NamespacePolicy())
    assert planned.refused is None and [s.action for s in planned.steps] == [action.name]


def test_the_schema_has_a_branch_for_every_action_and_no_other() -> None:
    document = schema()
    [steps] = [v for k, v in document["$defs"]["Spec"]["properties"].items() if k == "steps"]
    mapping = steps["items"]["discriminator"]["mapping"]
    assert set(mapping) == actions.NAMES
    for action in actions.ACTIONS:
        assert mapping[action.name] == f"#/$defs/{action.step.__name__}"
    published = json.loads((ROOT / "playbooks" / "schema" / "playbook-v1.json").read_text())
    assert published == document, "regenerate: receiver playbooks schema > playbooks/schema/playbook-v1.json"


@EACH
def test_playbooks_rbac_prints_what_the_action_needs(
    action: Action, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, example(action))
    assert cli.main(["playbooks", "rbac", str(tmp_path)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    needs = needed(action)
    cluster = {p for p in needs if p.resource in permissions.CLUSTER_SCOPED}
    assert printed == {"namespaced": permissions.rules(needs - cluster), "cluster": permissions.rules(cluster)}


def test_the_charts_action_table_is_generated_from_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["playbooks", "rbac", "--chart-table"]) == 0
    generated = capsys.readouterr().out
    assert generated == permissions.chart_table_text()
    assert TABLE.read_text() == generated, (
        f"{TABLE.relative_to(ROOT)} differs from the registry of actions: regenerate it with"
        f" `{permissions.CHART_TABLE_COMMAND}`"
    )
    table = yaml.safe_load(generated)
    assert set(table["actions"]) == actions.NAMES
    for action in actions.ACTIONS:
        for kind, rules in table["actions"][action.name].get("kinds", {}).items():
            assert rules == permissions.rules(action.needs(kind))


def test_the_chart_grants_what_the_registry_says_for_every_action() -> None:
    playbooks = {a.name.replace("_", "-"): example(a) for a in actions.ACTIONS}
    docs = manifests({"remediation": {"namespaces": {"allow": ["shop"]}, "playbooks": playbooks}})
    needs: set[permissions.Permission] = set()
    for action in actions.ACTIONS:
        needs |= needed(action)
    granted = {
        permissions.Permission(group, resource, verb)
        for role in remediation_roles(docs, "Role") + remediation_roles(docs, "ClusterRole")
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    shipped = permissions.of_playbooks(load_dirs([ROOT / "playbooks"]).playbooks)  # deployed by default too
    assert granted == needs | shipped
    [nodes] = remediation_roles(docs, "ClusterRole")
    assert {r for rule in nodes["rules"] for r in rule["resources"]} == permissions.CLUSTER_SCOPED


def test_the_metrics_know_every_action_that_acts_on_the_cluster_and_no_other() -> None:
    assert runner.KUBE_ACTIONS == actions.KUBERNETES
    assert {a.name for a in actions.ACTIONS if a.needs()} == actions.KUBERNETES
    registry = CollectorRegistry()
    Metrics(registry)
    labelled = {
        s.labels["action"]
        for family in registry.collect()
        if family.name == "receiver_playbook_action_duration_seconds"
        for s in family.samples
    }
    assert labelled == actions.KUBERNETES


def test_the_readmes_action_table_names_every_action_and_no_other() -> None:
    """The playbook reference a newcomer reads lists what the registry has (a row per action)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| action | input |")
    rows = readme[start:].split("\n\n", 1)[0].splitlines()[2:]
    named = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert named == actions.NAMES
