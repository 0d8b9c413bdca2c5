"""``scale_hpa``, the action added as one module and one registration line: on the emulator, in the guardrails,
and in the schema, ``receiver playbooks rbac`` and the chart's RBAC without any other edit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from receiver import cli
from receiver.cluster import ActionFailed
from receiver.playbooks.actions.base import NamespacePolicy
from receiver.playbooks.actions.scale_hpa import bounds, scale_hpa
from receiver.playbooks.guardrails import Block, Limits, judge
from receiver.playbooks.model import Playbook, load_file, schema
from receiver.playbooks.permissions import Permission, needs
from receiver.playbooks.plan import AlertFacts, plan
from tests.test_chart import manifests, of_kind
from tests.test_kube import HPAS, NOW, hpa, kube, put, stored
from tests.test_permissions import _permission

ROOT = Path(__file__).resolve().parent.parent
ALERT = AlertFacts("0123456789abcdef", "firing", {"alertname": "X", "namespace": "shop", "hpa": "cart"}, {}, NOW)
STEP = {
    "name": "widen",
    "action": "scale_hpa",
    "target": {"namespace": "{{ alert.labels.namespace }}", "name": "{{ alert.labels.hpa }}"},
    "min_replicas": 4,
    "max_replicas": 12,
}
PLAYBOOK = {
    "apiVersion": "receiver/v1",
    "kind": "Playbook",
    "metadata": {"name": "hpa-saturated"},
    "spec": {"trigger": {"alertname": "X"}, "steps": [STEP]},
}
RULE = {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "patch"]}


@pytest.mark.parametrize(
    ("asked", "lower", "expected"),
    [((4, 12), False, (4, 12)), ((None, 3), False, (2, 6)), ((None, 3), True, (2, 3)), ((1, None), True, (1, 6))],
)
def test_bounds_raise_unless_told_to_lower(
    asked: tuple[int | None, int | None], lower: bool, expected: tuple[int, int]
) -> None:
    assert bounds((2, 6), asked, lower=lower) == expected


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_it_raises_the_bounds_and_a_repeat_changes_nothing(kmock: Any) -> None:
    put(kmock, HPAS, "shop", "cart", hpa())
    k = kube(kmock)
    effect = await scale_hpa(k, "shop", "cart", min_replicas=4, max_replicas=12, lower=False)
    assert effect.before == {"minReplicas": 2, "maxReplicas": 6}
    assert effect.after == {"minReplicas": 4, "maxReplicas": 12}
    assert effect.target == "HorizontalPodAutoscaler/shop/cart"
    spec = stored(kmock, HPAS, "shop", "cart")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"], spec["scaleTargetRef"]["name"]) == (4, 12, "cart")
    again = await scale_hpa(k, "shop", "cart", min_replicas=3, max_replicas=12, lower=False)
    assert not again.changed and again.note == "already so: nothing to change"


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_it_lowers_only_when_told_and_never_puts_min_above_max(kmock: Any) -> None:
    put(kmock, HPAS, "shop", "cart", hpa(2, 6))
    k = kube(kmock)
    assert (await scale_hpa(k, "shop", "cart", min_replicas=None, max_replicas=4, lower=True)).after == {
        "minReplicas": 2,
        "maxReplicas": 4,
    }
    with pytest.raises(ActionFailed, match="minReplicas 5 would be above maxReplicas 4"):
        await scale_hpa(k, "shop", "cart", min_replicas=5, max_replicas=None, lower=False)
    assert stored(kmock, HPAS, "shop", "cart")["spec"]["minReplicas"] == 2


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_a_dry_run_says_what_it_would_send(kmock: Any) -> None:
    put(kmock, HPAS, "shop", "cart", hpa())
    effect = await scale_hpa(kube(kmock, dry_run=True), "shop", "cart", min_replicas=None, max_replicas=9, lower=False)
    assert (effect.dry_run, effect.patch, effect.after) == (
        True,
        {"spec": {"maxReplicas": 9}},
        {"minReplicas": 2, "maxReplicas": 9},
    )
    assert list(kmock["patch"]) == []


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_it_needs_exactly_what_its_requests_use(kmock: Any) -> None:
    put(kmock, HPAS, "shop", "cart", hpa())
    await scale_hpa(kube(kmock), "shop", "cart", min_replicas=3, max_replicas=8, lower=False)
    used = {_permission(r) for r in list(kmock)}
    assert (
        used
        == needs("scale_hpa")
        == {
            Permission("autoscaling", "horizontalpodautoscalers", "get"),
            Permission("autoscaling", "horizontalpodautoscalers", "patch"),
        }
    )


def _planned(tmp_path: Path, **changes: Any) -> Any:
    file = tmp_path / "hpa.yaml"
    file.write_text(yaml.safe_dump(PLAYBOOK | {"spec": {"trigger": {"alertname": "X"}, "steps": [STEP | changes]}}))
    loaded = load_file(file)
    assert isinstance(loaded, Playbook), loaded
    return plan(loaded, ALERT, NamespacePolicy())


def test_its_bounds_count_toward_the_max_replicas_guardrail(tmp_path: Path) -> None:
    planned = _planned(tmp_path, max_replicas=30)
    assert planned.steps[0].inputs["name"] == "cart"
    verdict = judge(planned, Limits(max_replicas=20, cooldown=timedelta(0)), [], breaker_open=False, now=NOW)
    assert verdict.block is Block.BLAST_RADIUS and "30 replicas" in verdict.reason
    assert judge(_planned(tmp_path), Limits(max_replicas=20), [], breaker_open=False, now=NOW).allowed


def test_the_model_refuses_nothing_to_do_and_min_above_max(tmp_path: Path) -> None:
    for changes, complaint in (
        ({"min_replicas": None, "max_replicas": None}, "give min_replicas, max_replicas or both"),
        ({"min_replicas": 9, "max_replicas": 3}, "min_replicas (9) is above max_replicas (3)"),
    ):
        file = tmp_path / "bad.yaml"
        step = {k: v for k, v in (STEP | changes).items() if v is not None}
        file.write_text(yaml.safe_dump(PLAYBOOK | {"spec": {"trigger": {"alertname": "X"}, "steps": [step]}}))
        problems = load_file(file)
        assert isinstance(problems, list) and complaint in str(problems[0])


def test_it_is_in_the_schema_the_rbac_output_and_the_charts_rbac(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = schema()
    assert document["$defs"]["ScaleHpa"]["properties"]["action"]["const"] == "scale_hpa"
    (tmp_path / "hpa.yaml").write_text(yaml.safe_dump(PLAYBOOK))
    assert cli.main(["playbooks", "rbac", str(tmp_path)]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {"namespaced": [RULE], "cluster": []}
    docs = manifests(
        {
            "remediation": {
                "shippedPlaybooks": {p.stem: False for p in (ROOT / "playbooks").glob("*.yaml")},
                "playbooks": {"hpa-saturated": PLAYBOOK},
            }
        }
    )
    [role] = of_kind(docs, "Role")
    assert role["rules"] == [RULE]
