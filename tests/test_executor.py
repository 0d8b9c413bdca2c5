"""Running plans against kmock's KubernetesEmulator: order, conditions, time limits, failures, refusals.

Time is a ``VirtualTimer``'s: waits and limits have their real lengths and pass at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest

from receiver.playbooks.executor import OnRender, Outcome, RunOutcome, StepResult, execute
from receiver.playbooks.model import Playbook, load_file
from receiver.playbooks.plan import AlertFacts, NamespacePolicy, Plan, PlannedStep, plan
from receiver.timer import VirtualTimer
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


async def run(
    tmp_path: Path,
    emulator: Any,
    steps: str,
    still: Callable[[], Awaitable[bool]] | None = None,
    alert: AlertFacts = ALERT,
    on_render: OnRender | None = None,
) -> Any:
    still = still or firing(True)
    seen: list[StepResult] = []

    async def on_step(result: StepResult) -> None:
        seen.append(result)

    planned = plan(playbook(tmp_path, steps), alert, NamespacePolicy())
    result = await execute(
        planned,
        kube(emulator),
        still_firing=still,
        alert=alert.values(),
        on_step=on_step,
        timer=VirtualTimer(),
        on_render=on_render,
    )
    assert seen == result.steps  # every step reported as it ended, in order
    return result


CRASHLOOP = """\
    - name: delete_pod
      action: delete_pod
      target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.pod }}"}
    - {name: settle, action: wait, duration: 2m}
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
    - {name: wait, action: wait_for_resolution, timeout: 5m}
    - {name: later, action: delete_pod, target: {namespace: shop, name: never}}
"""
    result = await run(tmp_path, kmock, steps, firing(True, True, True, False))  # before the step, then 2 polls
    assert result.outcome is RunOutcome.SUCCEEDED
    assert [(s.name, s.outcome, s.seconds) for s in result.steps] == [("wait", Outcome.RESOLVED, 10.0)]


async def test_waits_take_their_time_on_the_timer(tmp_path: Path, kmock: Any) -> None:
    steps = """\
    - {name: settle, action: wait, duration: 2h}
    - {name: still, action: wait_for_resolution, timeout: 5m}
"""
    result = await run(tmp_path, kmock, steps)
    assert [(s.name, s.outcome, s.seconds) for s in result.steps] == [
        ("settle", Outcome.SUCCEEDED, 7200.0),
        ("still", Outcome.SUCCEEDED, 300.0),
    ]
    assert result.steps[1].reason == "still firing after 300s"


async def test_a_step_over_its_limit_times_out_and_fails_the_run(kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod())
    slow = PlannedStep("slow", "wait", {"seconds": 120.0, "timeout_seconds": 60.0})  # the model refuses it: see
    never = PlannedStep("never", "delete_pod", {"kind": "Pod", "namespace": "shop", "name": "cart-1"})  # test_playbooks
    timer = VirtualTimer()
    result = await execute(Plan("p", (slow, never)), kube(kmock), still_firing=firing(True), alert={}, timer=timer)
    assert [(s.name, s.outcome, s.seconds) for s in result.steps] == [("slow", Outcome.TIMED_OUT, 60.0)]
    assert result.reason == "step 'slow': did not finish within 60s"
    assert result.outcome is RunOutcome.FAILED and list(kmock["delete"]) == []


MARK_UNLESS_ROLLED_BACK = """\
    - {{name: rollback, action: rollout_undo, target: {{namespace: shop, name: cart}}, max_age: 30m}}
    - name: mark
      when: steps.rollback.outcome != "succeeded"
      action: annotate
      target: {{namespace: shop, name: cart}}
      values: {values}
"""


async def test_later_steps_see_earlier_outcomes(tmp_path: Path, kmock: Any) -> None:
    rolled_out(kmock, "2026-11-21T22:00:00Z")  # five hours ago: too old to roll back
    steps = MARK_UNLESS_ROLLED_BACK.format(values='{receiver/needs-a-person: "true"}')
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


GUARDED_ROLLBACK = """\
    - {name: delete_pod, action: delete_pod, target: {namespace: "{{ alert.labels.namespace }}", name: cart-1}}
    - {name: settle, action: wait, duration: 2m}
    - name: rollback
      when: alert.status == "firing"
      action: rollout_restart
      target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.deployment }}"}
"""
NO_DEPLOYMENT = AlertFacts(
    "0123456789abcdef", "firing", {"alertname": "X", "namespace": "shop", "pod": "cart-1"}, {}, NOW
)


async def test_a_guarded_step_that_cannot_be_rendered_is_deferred_not_refused(tmp_path: Path) -> None:
    planned = plan(playbook(tmp_path, GUARDED_ROLLBACK), NO_DEPLOYMENT, NamespacePolicy())
    assert planned.refused is None
    rollback = planned.steps[2]
    assert (rollback.inputs, rollback.refused, rollback.pending) == ({}, None, True)
    assert rollback.deferred is not None and "deployment" in rollback.deferred
    assert rollback.source is not None and rollback.source["target"]["name"] == "{{ alert.labels.deployment }}"
    unguarded = GUARDED_ROLLBACK.replace('      when: alert.status == "firing"\n', "")
    refused = plan(playbook(tmp_path, unguarded), NO_DEPLOYMENT, NamespacePolicy())
    assert refused.refused is not None and "deployment" in refused.refused  # nothing half-done


async def test_a_deferred_step_whose_condition_fails_is_skipped(tmp_path: Path, kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod())
    result = await run(tmp_path, kmock, GUARDED_ROLLBACK, firing(True, True, False), NO_DEPLOYMENT)
    assert [(s.name, s.outcome) for s in result.steps][2] == ("rollback", Outcome.SKIPPED)
    assert result.outcome is RunOutcome.SUCCEEDED and [r.method for r in kmock["delete"]] == ["DELETE"]


async def test_a_deferred_step_that_still_cannot_be_rendered_fails_with_the_reason(tmp_path: Path, kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod())
    result = await run(tmp_path, kmock, GUARDED_ROLLBACK, alert=NO_DEPLOYMENT)
    assert [(s.name, s.outcome) for s in result.steps][2] == ("rollback", Outcome.FAILED)
    assert result.reason.startswith("step 'rollback': deferred step cannot be rendered: ")
    assert "deployment" in result.reason and list(kmock["patch"]) == []


async def test_a_deferred_step_renders_with_the_values_of_its_moment(tmp_path: Path, kmock: Any) -> None:
    rolled_out(kmock, "2026-11-21T22:00:00Z")  # too old to roll back
    steps = MARK_UNLESS_ROLLED_BACK.format(
        values='{receiver/rollback: "{{ steps.rollback.outcome }}: {{ steps.rollback.reason }}"}'
    )
    told: list[tuple[Plan, PlannedStep]] = []

    async def on_render(whole: Plan, step: PlannedStep) -> str | None:
        told.append((whole, step))
        return None

    result = await run(tmp_path, kmock, steps, on_render=on_render)
    assert [(s.name, s.outcome) for s in result.steps] == [("rollback", Outcome.SKIPPED), ("mark", Outcome.SUCCEEDED)]
    [(whole, step)] = told
    assert step.inputs["values"]["receiver/rollback"].startswith("skipped: ")
    assert step.deferred is not None and "steps" in step.deferred  # why it was deferred, kept
    assert whole.steps[1] == step and result.steps[1].inputs == step.inputs
    annotations = stored(kmock, DEPLOYMENTS, "shop", "cart")["metadata"]["annotations"]
    assert annotations["receiver/rollback"] == step.inputs["values"]["receiver/rollback"]


async def test_a_deferred_step_the_guardrails_refuse_fails_and_acts_not(tmp_path: Path, kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-1", pod())
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment())

    async def refuse(whole: Plan, step: PlannedStep) -> str | None:
        assert step.inputs["name"] == "cart"
        return "target_busy: Deployment/shop/cart: another run is busy with it"

    steps = GUARDED_ROLLBACK.replace("{{ alert.labels.deployment }}", "{{ steps.settle.outcome and 'cart' }}")
    result = await run(tmp_path, kmock, steps, alert=NO_DEPLOYMENT, on_render=refuse)
    assert [(s.name, s.outcome) for s in result.steps][2] == ("rollback", Outcome.FAILED)
    assert result.reason == "step 'rollback': target_busy: Deployment/shop/cart: another run is busy with it"
    assert list(kmock["patch"]) == []


async def test_a_deferred_step_is_checked_against_the_namespaces_when_rendered(tmp_path: Path, kmock: Any) -> None:
    steps = """\
    - {name: settle, action: wait, duration: 1m}
    - name: restart
      when: steps.settle.outcome == "succeeded"
      action: rollout_restart
      target: {namespace: "{{ steps.settle.outcome and 'kube-system' }}", name: cart}
"""
    result = await run(tmp_path, kmock, steps)
    assert [(s.name, s.outcome) for s in result.steps] == [("settle", Outcome.SUCCEEDED), ("restart", Outcome.FAILED)]
    assert "namespace 'kube-system' is denied" in result.reason and list(kmock["patch"]) == []
