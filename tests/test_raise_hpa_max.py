"""``raise_hpa_max``: an autoscaler's ceiling raised by a step within a cap, never lowered; at the cap, a success
that says so; the cap counts toward the ``max_replicas`` guardrail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import kmock
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.playbooks.actions.base import NamespacePolicy
from receiver.playbooks.actions.raise_hpa_max import raise_hpa_max, raised
from receiver.playbooks.executor import Outcome, execute
from receiver.playbooks.guardrails import Block, Limits, judge
from receiver.playbooks.model import Playbook
from receiver.playbooks.permissions import needs
from receiver.playbooks.plan import AlertFacts, plan
from tests.test_kube import HPAS, NOW, hpa, kube, put, stored
from tests.test_permissions import _permission

ALERT = AlertFacts(
    "0123456789abcdef",
    "firing",
    {
        "alertname": "KubeHpaMaxedOut",
        "namespace": "shop",
        "horizontalpodautoscaler": "cart",
        "job": "kube-state-metrics",
        "service": "kube-prometheus-stack-kube-state-metrics",
        "severity": "warning",
    },
    {},
    NOW,
)


def playbook(by: int | str = "50%", cap: int = 20) -> Playbook:
    step = {
        "name": "raise",
        "action": "raise_hpa_max",
        "target": {"namespace": "{{ alert.labels.namespace }}", "name": "{{ alert.labels.horizontalpodautoscaler }}"},
        "by": by,
        "cap": cap,
    }
    return Playbook.model_validate(
        {
            "apiVersion": "receiver/v1",
            "kind": "Playbook",
            "metadata": {"name": "hpa-maxed-out"},
            "spec": {"trigger": {"alertname": "KubeHpaMaxedOut"}, "steps": [step]},
        }
    )


@pytest.mark.parametrize(
    ("current", "by", "percent", "cap", "expected"),
    [
        (6, 2, None, 20, 8),
        (6, None, 50, 20, 9),
        (5, None, 50, 20, 8),  # 2.5 rounded up
        (6, None, 1, 20, 7),  # at least one more
        (18, 4, None, 20, 20),  # never above the cap
        (20, 4, None, 20, 20),  # at the cap: nothing to raise
        (25, 4, None, 20, 25),  # above the cap already: never lowered
    ],
)
def test_the_new_maximum(current: int, by: int | None, percent: int | None, cap: int, expected: int) -> None:
    assert raised(current, cap, by=by, percent=percent) == expected


@given(st.integers(0, 10_000), st.integers(1, 10_000), st.integers(1, 500), st.booleans())
def test_it_never_lowers_and_never_passes_the_cap(current: int, cap: int, step: int, relative: bool) -> None:
    new = raised(current, cap, by=None if relative else step, percent=step if relative else None)
    assert new >= current
    assert new <= max(cap, current)
    assert new > current or current >= cap


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_it_raises_the_ceiling_and_a_retried_write_does_not_raise_it_twice(kmock: Any) -> None:
    put(kmock, HPAS, "shop", "cart", hpa(2, 6))
    kmock["patch"][:1] << 500  # the emulator applies the patch, then answers 500: the retry sends the same value
    effect = await raise_hpa_max(kube(kmock), "shop", "cart", cap=20, by=None, percent=50)
    assert (effect.before, effect.after, effect.note) == ({"maxReplicas": 6}, {"maxReplicas": 9}, "")
    assert stored(kmock, HPAS, "shop", "cart")["spec"]["maxReplicas"] == 9
    assert [r.method for r in kmock["patch"]] == ["PATCH", "PATCH"]
    assert {_permission(r) for r in list(kmock)} == needs("raise_hpa_max")


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_at_the_cap_the_step_succeeds_saying_there_is_nothing_to_raise(kmock: Any) -> None:
    put(kmock, HPAS, "shop", "cart", hpa(2, 20))

    async def firing() -> bool:
        return True

    result = await execute(plan(playbook(), ALERT, NamespacePolicy()), kube(kmock), still_firing=firing, alert={})
    [step] = result.steps
    assert (step.outcome, step.reason) == (Outcome.SUCCEEDED, "already at the cap 20: nothing to raise")
    assert step.effect is not None and not step.effect.changed and not step.values()["changed"]
    assert list(kmock["patch"]) == []
    put(kmock, HPAS, "shop", "cart", hpa(2, 25))
    again = await raise_hpa_max(kube(kmock), "shop", "cart", cap=20, by=2, percent=None)
    assert again.note == "maxReplicas 25 is above the cap 20: nothing to raise"


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_a_dry_run_says_what_it_would_set(kmock: Any) -> None:
    put(kmock, HPAS, "shop", "cart", hpa(2, 6))
    effect = await raise_hpa_max(kube(kmock, dry_run=True), "shop", "cart", cap=20, by=3, percent=None)
    assert (effect.dry_run, effect.patch, effect.after) == (True, {"spec": {"maxReplicas": 9}}, {"maxReplicas": 9})
    assert list(kmock["patch"]) == []


def test_the_plan_and_the_cap_counts_toward_the_max_replicas_guardrail() -> None:
    planned = plan(playbook("50%", 30), ALERT, NamespacePolicy())
    assert planned.steps[0].inputs == {
        "kind": "HorizontalPodAutoscaler",
        "namespace": "shop",
        "name": "cart",
        "by": None,
        "by_percent": 50,
        "cap": 30,
        "timeout_seconds": 60.0,
    }
    verdict = judge(planned, Limits(max_replicas=20, cooldown=timedelta(0)), [], breaker_open=False, now=NOW)
    assert verdict.block is Block.BLAST_RADIUS and "30 replicas" in verdict.reason
    assert judge(
        plan(playbook(3, 20), ALERT, NamespacePolicy()), Limits(max_replicas=20), [], breaker_open=False, now=NOW
    ).allowed


@pytest.mark.parametrize(("by", "cap"), [(0, 20), ("0%", 20), ("half", 20), ("50 %", 20), (2, 0)])
def test_the_model_refuses_a_raise_of_nothing_or_no_cap(by: Any, cap: int) -> None:
    with pytest.raises(ValueError, match="raise_hpa_max"):
        playbook(by, cap)
