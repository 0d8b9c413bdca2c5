"""Running plans against kmock's KubernetesEmulator: order, conditions, time limits, failures, refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest

from receiver.playbooks.executor import Outcome, RunOutcome, StepResult, execute
from receiver.playbooks.model import Playbook, load_file
from receiver.playbooks.plan import AlertFacts, NamespacePolicy, Plan, PlannedStep, plan
from tests.test_kube import DEPLOYMENTS, NOW, deployment, kube, pod, put, rolled_out, stored

pytestmark = pytest.mark.kmock(cls=kmock.KubernetesEmulator)
ALERT = AlertFacts(
    "0123456789abcdef",
    "firing",
    {"alertname": "X", "namespace": "shop", "pod": "cart-1", "deployment": "cart"},
    {},
    NOW,
)


def playbook(tmp_path: Path, steps: str) -> Playbook:
    file = tmp_path / "p.yaml"
    file.write_text(
        "apiVersion: receiver/v1\nkind: Playbook\nmetadata: {name: p}\nspec:\n  trigger: {alertname: X}\n  steps:\n"
        + steps
    )
    found = load_file(file)
    assert isinstance(found, Playbook), found
    return found


def firing(*answers: bool) -> Callable[[], Awaitable[bool]]:
    """Answers in turn, then the last one forever."""
    queue = list(answers)

    async def ask() -> bool:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return ask


async def run(tmp_path: Path, emulator: Any, steps: str, still: Callable[[], Awaitable[bool]] | None = None) -> Any:
    still = still or firing(True)
    seen: list[StepResult] = []

    async def on_step(result: StepResult) -> None:
        seen.append(result)

    planned = plan(playbook(tmp_path, steps), ALERT, NamespacePolicy())
    result = await execute(
        planned, kube(emulator), still_firing=still, alert=ALERT.values(), on_step=on_step, poll_seconds=0.01
    )
    assert seen == result.steps  # every step reported as it ended, in order
    return result


CRASHLOOP = """\
    - name: delete_pod
      action: delete_pod
      target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.pod }}"}
    - {name: settle, action: wait, duration: 20ms}
    - name: restart
      when: alert.status == "firing"
      action: rollout_restart
      target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.deployment }}"}
"""


async def test_steps_run_in_order_and_act_on_the_cluster(tmp_path: Path, kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod())
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    result = await run(tmp_path, kmock, CRASHLOOP)
    assert result.outcome is RunOutcome.SUCCEEDED
    assert [(s.name, s.outcome) for s in result.steps] == [
        ("delete_pod", Outcome.SUCCEEDED),
        ("settle", Outcome.SUCCEEDED),
        ("restart", Outcome.SUCCEEDED),
    ]
    assert [r.method for r in kmock["delete"]] == ["DELETE"]
    annotations = stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"kubectl.kubernetes.io/restartedAt": NOW.isoformat()}


async def test_a_condition_sees_the_alert_as_it_is_now(tmp_path: Path, kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod())
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    result = await run(tmp_path, kmock, CRASHLOOP, firing(True, True, False))  # resolved after the wait
    assert result.steps[2].outcome is Outcome.SKIPPED and "condition does not hold" in result.steps[2].reason
    assert list(kmock["patch"]) == []


async def test_the_first_failure_ends_the_run(tmp_path: Path, kmock: Any) -> None:
    result = await run(tmp_path, kmock, CRASHLOOP)  # no such pod
    assert result.outcome is RunOutcome.FAILED and "not found (404)" in result.reason
    assert [s.name for s in result.steps] == ["delete_pod"]


async def test_a_refused_plan_runs_nothing(tmp_path: Path, kmock: Any) -> None:
    steps = '    - {name: d, action: delete_pod, target: {namespace: kube-system, name: "{{ alert.labels.pod }}"}}\n'
    result = await run(tmp_path, kmock, steps)
    assert result.outcome is RunOutcome.REFUSED and "kube-system" in result.reason
    assert result.steps == [] and list(kmock) == []


async def test_wait_for_resolution_ends_the_run_as_a_success(tmp_path: Path, kmock: Any) -> None:
    steps = """\
    - {name: wait, action: wait_for_resolution, timeout: 5s}
    - {name: later, action: delete_pod, target: {namespace: shop, name: never}}
"""
    result = await run(tmp_path, kmock, steps, firing(True, True, True, False))
    assert result.outcome is RunOutcome.SUCCEEDED
    assert [(s.name, s.outcome) for s in result.steps] == [("wait", Outcome.RESOLVED)]


async def test_time_limits(tmp_path: Path, kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod())
    steps = """\
    - {name: still, action: wait_for_resolution, timeout: 50ms}
    - {name: slow, action: wait, duration: 5s, timeout: 50ms}
    - {name: never, action: delete_pod, target: {namespace: shop, name: cart-1}}
"""
    result = await run(tmp_path, kmock, steps)
    assert [(s.name, s.outcome) for s in result.steps] == [("still", Outcome.SUCCEEDED), ("slow", Outcome.TIMED_OUT)]
    assert result.steps[0].reason == "still firing after 0.05s"
    assert result.outcome is RunOutcome.FAILED and list(kmock["delete"]) == []


async def test_later_steps_see_earlier_outcomes(tmp_path: Path, kmock: Any) -> None:
    rolled_out(kmock, "2026-11-21T22:00:00Z")  # five hours ago: too old to roll back
    steps = """\
    - {name: rollback, action: rollout_undo, target: {namespace: shop, name: cart}, max_age: 30m}
    - name: mark
      when: steps.rollback.outcome != "succeeded"
      action: annotate
      target: {namespace: shop, name: cart}
      values: {receiver/needs-a-person: "true"}
"""
    result = await run(tmp_path, kmock, steps)
    assert [(s.name, s.outcome) for s in result.steps] == [("rollback", Outcome.SKIPPED), ("mark", Outcome.SUCCEEDED)]
    assert result.outcome is RunOutcome.SUCCEEDED
    annotations = stored(kmock, DEPLOYMENTS, "shop", "cart")["metadata"]["annotations"]
    assert annotations["receiver/needs-a-person"] == "true"


async def test_nothing_to_roll_back_to_fails_with_the_reason(tmp_path: Path, kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())
    kmock.resources["apps/v1/replicasets"] = {}  # declared, and empty
    steps = "    - {name: rollback, action: rollout_undo, target: {namespace: shop, name: cart}}\n"
    result = await run(tmp_path, kmock, steps)  # the deployment has no revision: nothing to roll back to
    assert result.outcome is RunOutcome.FAILED and "no ReplicaSet" in result.reason


async def test_an_unforeseen_error_fails_the_step_not_the_engine(kmock: Any) -> None:
    broken = Plan("p", (PlannedStep("x", "scale", {"timeout_seconds": 1.0}),))  # inputs without a target
    result = await execute(broken, kube(kmock), still_firing=firing(True), alert=ALERT.values())
    assert result.outcome is RunOutcome.FAILED and "unexpected error: KeyError('kind')" in result.reason
