"""Guardrails, by table: each check blocks with its reason, in order; otherwise the run may start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receiver.playbooks.guardrails import (
    Block,
    Limits,
    PastRun,
    breaker_opens,
    judge,
    judge_rendered,
    pods_deleted,
    targets_of,
)
from receiver.playbooks.plan import Plan, PlannedStep

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
POD = "Pod/shop/cart-1"
DEP = "Deployment/shop/cart"


def step(action: str, **inputs: object) -> PlannedStep:
    return PlannedStep(action, action, {"timeout_seconds": 60.0, **inputs})


DELETE = step("delete_pod", kind="Pod", namespace="shop", name="cart-1")
RESTART = step("rollout_restart", kind="Deployment", namespace="shop", name="cart")
PLAN = Plan("crashloop", (DELETE, RESTART))


def past(
    minutes_ago: float,
    *,
    playbook: str = "crashloop",
    targets: frozenset[str] = frozenset({POD}),
    finished: bool = True,
    pods: int = 0,
) -> PastRun:
    return PastRun(playbook, targets, NOW - timedelta(minutes=minutes_ago), finished, pods)


@pytest.mark.parametrize(
    ("plan", "history", "breaker", "limits", "block", "why"),
    [
        (PLAN, [], False, Limits(), None, "allowed"),
        (
            Plan("p", (PlannedStep("d", "delete_pod", refused="namespace 'kube-system' is denied"),)),
            [],
            False,
            Limits(),
            Block.REFUSED,
            "kube-system",
        ),
        (PLAN, [], True, Limits(), Block.CIRCUIT_OPEN, "failed 3 times in a row"),
        (PLAN, [past(60 * 5, finished=False)], False, Limits(), Block.TARGET_BUSY, "another run is busy"),
        (PLAN, [past(5)], False, Limits(), Block.COOLDOWN, "0:05:00 ago (cooldown 0:10:00)"),
        (PLAN, [past(5, targets=frozenset({"Pod/shop/other"}))], False, Limits(), None, "allowed"),
        (PLAN, [past(11)], False, Limits(), None, "allowed"),  # the cooldown has passed
        (
            PLAN,
            [past(20 + i, targets=frozenset({f"Pod/shop/p{i}"})) for i in range(6)],
            False,
            Limits(),
            Block.RATE_LIMIT,
            "ran 6 times in the last hour",
        ),
        (
            PLAN,
            [past(70 + i, targets=frozenset({f"Pod/shop/p{i}"})) for i in range(6)],
            False,
            Limits(),
            None,
            "allowed",
        ),
        (
            Plan("p", tuple(step("delete_pod", kind="Pod", namespace="shop", name=f"p{i}") for i in range(4))),
            [],
            False,
            Limits(),
            Block.BLAST_RADIUS,
            "delete 4 pods (limit 3 per run)",
        ),
        (
            PLAN,
            [past(30, playbook="other", targets=frozenset({"Pod/x/y"}), pods=10)],
            False,
            Limits(),
            Block.BLAST_RADIUS,
            "10 pods were deleted in the last hour",
        ),
        (
            Plan("p", (step("scale", kind="Deployment", namespace="shop", name="cart", max=50),)),
            [],
            False,
            Limits(),
            Block.BLAST_RADIUS,
            "scale to 50 replicas (limit 20)",
        ),
    ],
)
def test_judge(
    plan: Plan, history: list[PastRun], breaker: bool, limits: Limits, block: Block | None, why: str
) -> None:
    verdict = judge(plan, limits, history, breaker_open=breaker, now=NOW)
    assert verdict.block is block
    assert why in verdict.reason


def test_checks_come_in_order() -> None:
    everything_wrong = [past(1, finished=False)] + [past(10 + i, targets=frozenset({f"P/{i}"})) for i in range(9)]
    assert judge(PLAN, Limits(), everything_wrong, breaker_open=True, now=NOW).block is Block.CIRCUIT_OPEN
    assert judge(PLAN, Limits(), everything_wrong, breaker_open=False, now=NOW).block is Block.TARGET_BUSY


def test_an_allowed_run_carries_dry_run_and_approval() -> None:
    verdict = judge(PLAN, Limits().overridden(dry_run=True, approval=True), [], breaker_open=False, now=NOW)
    assert (verdict.allowed, verdict.dry_run, verdict.approval) == (True, True, True)
    assert Limits().overridden(cooldown=timedelta(hours=1), max_runs_per_hour=None).cooldown == timedelta(hours=1)


def test_targets_pods_and_the_breaker() -> None:
    cordon = step("cordon", node="node-1")
    assert targets_of(Plan("p", (DELETE, RESTART, cordon, step("wait", seconds=1.0)))) == {POD, DEP, "Node/node-1"}
    assert pods_deleted(PLAN) == 1
    assert [breaker_opens(n, Limits()) for n in (0, 2, 3, 4)] == [False, False, True, True]


DEFERRED = PlannedStep("scale", "scale", when='alert.status == "firing"', deferred="'deployment' is undefined")
SCALE = step("scale", kind="Deployment", namespace="shop", name="cart", replicas=None, by=2, min=2, max=50)
BORN = Plan("crashloop", (DELETE, DEFERRED))


def test_a_deferred_step_names_no_object_until_it_is_rendered() -> None:
    assert targets_of(BORN) == frozenset({POD})  # judged at the start on what it knows
    assert judge(BORN, Limits(), [past(5, targets=frozenset({DEP}))], breaker_open=False, now=NOW).allowed


@pytest.mark.parametrize(
    ("rendered", "others", "limits", "block", "why"),
    [
        (SCALE, [], Limits(max_replicas=50), None, "allowed"),
        (SCALE, [], Limits(), Block.BLAST_RADIUS, "it may scale to 50 replicas (limit 20)"),
        (RESTART, [past(30, targets=frozenset({DEP}), finished=False)], Limits(), Block.TARGET_BUSY, DEP),
        (RESTART, [past(5, targets=frozenset({DEP}))], Limits(), Block.COOLDOWN, "0:05:00 ago"),
        (RESTART, [past(5, targets=frozenset({POD}))], Limits(), None, "allowed"),  # another object
        (
            DELETE,
            [past(10, targets=frozenset({"Pod/shop/x"}), pods=9)],
            Limits(),
            Block.BLAST_RADIUS,
            "9 pods were deleted in the last hour; 2 more",  # the plan's first deletion and this one
        ),
    ],
)
def test_a_rendered_deferred_step_is_judged_on_its_objects_and_the_whole_plan(
    rendered: PlannedStep, others: list[PastRun], limits: Limits, block: Block | None, why: str
) -> None:
    step = PlannedStep("scale", rendered.action, rendered.inputs, DEFERRED.when, deferred=DEFERRED.deferred)
    verdict = judge_rendered(BORN.with_step(step), step, limits, others, now=NOW)
    assert verdict.block is block and why in verdict.reason
