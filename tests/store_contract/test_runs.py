"""The store contract for playbook runs: what any backend must do with runs and circuit-breaker resets.

Every test takes the ``store`` fixture of ``conftest.py``, parameterized over
the backends ``store.backend`` can name (SQLite today); a new backend must pass
them all unchanged. The tests speak only the ``Store`` protocol and the typed
records of ``receiver.playbooks.records``: no SQL, no row ids beyond a run's id.
"""

from __future__ import annotations

import dataclasses

import pytest

from receiver.incidents.book import Changes
from receiver.playbooks.executor import Outcome
from receiver.playbooks.plan import AlertFacts, Plan, PlannedStep
from receiver.playbooks.records import BreakerReset, RunRecord, StartedRun, StepRecord
from receiver.playbooks.runs import RunIntent, RunStatus
from receiver.store import Store
from tests.conftest import T0
from tests.store_contract.conftest import at

PLAN_STEPS = (
    PlannedStep(
        "delete_pod", "delete_pod", {"kind": "Pod", "namespace": "shop", "name": "cart-1", "timeout_seconds": 60.0}
    ),
    PlannedStep("settle", "wait", {"seconds": 30.0, "timeout_seconds": 60.0}, when='alert.status == "firing"'),
)


def intent(
    fingerprint: str = "f1", *, playbook: str = "crashloop", episode: float = 0, incident: str | None = "INC-1"
) -> RunIntent:
    """A run asked for: its playbook, alert, firing episode (minutes after T0) and incident."""
    alert = AlertFacts(
        fingerprint, "firing", {"alertname": "KubePodCrashLooping", "pod": "cart-1"}, {"summary": "crash"}, at(episode)
    )
    return RunIntent(playbook, fingerprint, at(episode), incident, Plan(playbook, PLAN_STEPS), alert, at(episode))


async def recorded(store: Store, *intents: RunIntent) -> list[RunRecord]:
    """Record ``intents``; the runs now pending, oldest first."""
    await store.record(Changes(), intents)
    return await store.pending_runs()


DELETED = StepRecord(
    "delete_pod", "delete_pod", Outcome.SUCCEEDED, "", 0.25, {"deleted": False, "phase": "Running"}, {"deleted": True}
)
FAILED_STEP = StepRecord("delete_pod", "delete_pod", Outcome.FAILED, "403: forbidden", 0.1, {}, None, dry_run=True)
ROLLED_BACK = StepRecord(
    "rollback",
    "rollout_undo",
    Outcome.SUCCEEDED,
    "",
    0.3,
    {"revision": 2, "images": ["cart:2"]},
    {"revision": 3, "images": ["cart:1"]},
    resolved=("Pod/shop/cart-7d4b9c6f5-x2x9z", "ReplicaSet/shop/cart-7d4b9c6f5", "Deployment/shop/cart"),
)


async def every_status(store: Store) -> dict[RunStatus, int]:
    """One run in each status, through the store's operations only; their ids."""
    runs = await recorded(store, *(intent(f"f{i}", episode=i) for i in range(len(RunStatus))))
    ids = dict(zip(RunStatus, (r.id for r in runs), strict=True))
    await store.await_approval(ids[RunStatus.AWAITING_APPROVAL], "needs approval")
    await store.await_approval(ids[RunStatus.REJECTED], "needs approval")
    await store.finish_run(ids[RunStatus.REJECTED], RunStatus.REJECTED, "rejected by alice: not now", at(30))
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INTERRUPTED):
        await store.start_run(ids[status], at(10), dry_run=status is RunStatus.FAILED, reason="")
    await store.add_step(ids[RunStatus.SUCCEEDED], DELETED)
    await store.finish_run(ids[RunStatus.SUCCEEDED], RunStatus.SUCCEEDED, "", at(11))
    await store.add_step(ids[RunStatus.FAILED], FAILED_STEP)
    await store.finish_run(ids[RunStatus.FAILED], RunStatus.FAILED, "step 'delete_pod': 403: forbidden", at(12))
    await store.interrupt_runs(at(13))  # the one still running is interrupted; the next one starts after
    await store.start_run(ids[RunStatus.RUNNING], at(14), dry_run=False, reason="approved by bob")
    await store.add_step(ids[RunStatus.RUNNING], DELETED)
    await store.block_runs([(ids[RunStatus.BLOCKED], "cooldown: acted on Pod/shop/cart-1 0:05:00 ago")], at(15))
    return ids


async def test_a_recorded_run_is_pending_with_what_it_was_asked_for(store: Store) -> None:
    asked = intent()
    [run] = await recorded(store, asked)
    assert (run.playbook, run.fingerprint, run.incident, run.episode) == ("crashloop", "f1", "INC-1", T0)
    assert (run.status, run.reason, run.dry_run, run.created_at) == (RunStatus.PENDING, "", False, T0)
    assert (run.started_at, run.finished_at, run.steps) == (None, None, ())
    assert run.plan == asked.plan
    assert run.alert == asked.alert
    assert await store.run(run.id) == run


async def test_a_run_is_recorded_once_per_playbook_alert_and_episode(store: Store) -> None:
    await recorded(store, intent(), intent())
    await recorded(store, intent())  # a repeated notification, a replayed inbox
    await recorded(store, intent(playbook="other"), intent("f2"), intent(episode=20))
    found = await store.pending_runs()
    assert [(r.playbook, r.fingerprint, r.episode) for r in found] == [
        ("crashloop", "f1", T0),
        ("other", "f1", T0),
        ("crashloop", "f2", T0),
        ("crashloop", "f1", at(20)),
    ]
    assert len(await store.pending_runs(limit=2)) == 2


async def test_a_run_waits_for_approval_then_starts_and_appends_its_steps(store: Store) -> None:
    [run] = await recorded(store, intent())
    await store.await_approval(run.id, "needs approval")
    assert await store.pending_runs() == []
    waiting = await store.run(run.id)
    assert waiting is not None and (waiting.status, waiting.reason) == (RunStatus.AWAITING_APPROVAL, "needs approval")
    await store.start_run(run.id, at(5), dry_run=True, reason="approved by alice")
    await store.add_step(run.id, DELETED)
    await store.add_step(run.id, ROLLED_BACK)
    await store.add_step(run.id, FAILED_STEP)
    running = await store.run(run.id)
    assert running is not None
    assert (running.status, running.reason, running.dry_run) == (RunStatus.RUNNING, "approved by alice", True)
    assert (running.started_at, running.finished_at) == (at(5), None)
    assert running.steps == (DELETED, ROLLED_BACK, FAILED_STEP)  # what a step resolved its target through, too


async def test_a_run_finishes_only_with_a_final_status(store: Store) -> None:
    [run] = await recorded(store, intent())
    await store.start_run(run.id, at(1), dry_run=False, reason="")
    for status in (RunStatus.PENDING, RunStatus.AWAITING_APPROVAL, RunStatus.RUNNING):
        with pytest.raises(ValueError, match="cannot finish"):
            await store.finish_run(run.id, status, "", at(2))
    await store.finish_run(run.id, RunStatus.FAILED, "step 'delete_pod': 403", at(2))
    done = await store.run(run.id)
    assert done is not None
    assert (done.status, done.reason, done.started_at, done.finished_at) == (
        RunStatus.FAILED,
        "step 'delete_pod': 403",
        at(1),
        at(2),
    )


async def test_history_holds_the_runs_started_since_with_their_plans(store: Store) -> None:
    first, second, third = await recorded(store, intent("f1"), intent("f2"), intent("f3"))
    await store.start_run(first.id, at(1), dry_run=False, reason="")
    await store.finish_run(first.id, RunStatus.SUCCEEDED, "", at(2))
    await store.start_run(second.id, at(30), dry_run=True, reason="")
    assert sorted(await store.run_history(at(1)), key=lambda r: r.started_at) == [
        StartedRun("crashloop", first.plan, at(1), True, first.id),
        StartedRun("crashloop", second.plan, at(30), False, second.id),
    ]
    assert await store.run_history(at(2)) == [StartedRun("crashloop", second.plan, at(30), False, second.id)]
    assert third.id not in {r.id for r in await store.runs(status=RunStatus.RUNNING)}


async def test_runs_left_running_are_interrupted_and_returned(store: Store) -> None:
    first, second = await recorded(store, intent("f1"), intent("f2"))
    await store.start_run(first.id, at(1), dry_run=False, reason="")
    [interrupted] = await store.interrupt_runs(at(3))
    assert (interrupted.id, interrupted.status, interrupted.finished_at) == (first.id, RunStatus.INTERRUPTED, at(3))
    assert "not started again" in interrupted.reason
    assert await store.interrupt_runs(at(4)) == []
    assert [r.id for r in await store.pending_runs()] == [second.id]


async def test_approvals_not_given_in_time_are_rejected(store: Store) -> None:
    old, recent, pending = await recorded(store, intent("f1"), intent("f2", episode=10), intent("f3"))
    await store.await_approval(old.id, "needs approval")
    await store.await_approval(recent.id, "needs approval")
    [expired] = await store.expire_approvals(at(5), at(16), "nobody approved it within 0:15:00")
    assert (expired.id, expired.playbook, expired.incident) == (old.id, "crashloop", "INC-1")
    assert (expired.status, expired.finished_at) == (RunStatus.REJECTED, at(16))
    still = await store.run(recent.id)
    assert still is not None and still.status is RunStatus.AWAITING_APPROVAL
    assert [r.id for r in await store.pending_runs()] == [pending.id]


async def test_blocked_runs_are_recorded_together_with_their_reasons(store: Store) -> None:
    first, second, third = await recorded(store, intent("f1"), intent("f2"), intent("f3"))
    await store.block_runs([(first.id, "cooldown: recent"), (second.id, "rate_limit: too many")], at(1))
    await store.block_runs([], at(2))
    listed = {r.id: r for r in await store.runs(status=RunStatus.BLOCKED)}
    assert {i: (r.reason, r.finished_at) for i, r in listed.items()} == {
        first.id: ("cooldown: recent", at(1)),
        second.id: ("rate_limit: too many", at(1)),
    }
    assert [r.id for r in await store.pending_runs()] == [third.id]


async def test_listing_is_newest_first_filtered_and_paged(store: Store) -> None:
    ids = await every_status(store)
    await recorded(store, intent("g1", playbook="other"))
    listed = await store.runs()
    assert [r.id for r in listed] == sorted((r.id for r in listed), reverse=True)
    assert {r.status for r in listed} == set(RunStatus)
    assert {r.id: r.status for r in listed if r.playbook == "crashloop"} == {i: s for s, i in ids.items()}
    assert [r.playbook for r in await store.runs(playbook="other")] == ["other"]
    assert [r.id for r in await store.runs(status=RunStatus.FAILED)] == [ids[RunStatus.FAILED]]
    assert await store.runs(status=RunStatus.FAILED, playbook="other") == []
    first_page = await store.runs(limit=3)
    next_page = await store.runs(limit=3, before=first_page[-1].id)
    assert [r.id for r in first_page + next_page] == [r.id for r in listed[:6]]


async def test_every_status_reads_back_as_recorded(store: Store) -> None:
    ids = await every_status(store)
    runs = {status: await store.run(run_id) for status, run_id in ids.items()}
    assert {s: r.status for s, r in runs.items() if r is not None} == {s: s for s in RunStatus}
    succeeded, running = runs[RunStatus.SUCCEEDED], runs[RunStatus.RUNNING]
    assert succeeded is not None and succeeded.steps == (DELETED,)
    assert (succeeded.started_at, succeeded.finished_at) == (at(10), at(11))
    assert running is not None and (running.reason, running.steps, running.finished_at) == (
        "approved by bob",
        (DELETED,),
        None,
    )
    failed = runs[RunStatus.FAILED]
    assert failed is not None and failed.dry_run and failed.steps == (FAILED_STEP,)
    assert await store.run(max(ids.values()) + 100) is None


async def test_records_are_frozen(store: Store) -> None:
    [run] = await recorded(store, intent())
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = RunStatus.RUNNING  # type: ignore[misc]


async def _fail(store: Store, fingerprint: str, ended: float, playbook: str = "crashloop") -> None:
    await _end(store, fingerprint, ended, RunStatus.FAILED, playbook)


async def _end(store: Store, fingerprint: str, ended: float, status: RunStatus, playbook: str = "crashloop") -> None:
    [run] = [r for r in await recorded(store, intent(fingerprint, playbook=playbook)) if r.fingerprint == fingerprint]
    await store.start_run(run.id, at(ended - 1), dry_run=False, reason="")
    await store.finish_run(run.id, status, "", at(ended))


async def test_failures_in_a_row_count_back_to_the_last_success(store: Store) -> None:
    assert await store.failures_in_a_row("crashloop", 3) == 0
    await _fail(store, "f1", 1)
    await _end(store, "f2", 2, RunStatus.SUCCEEDED)
    await _fail(store, "f3", 3)
    await _fail(store, "f4", 4)
    await _fail(store, "g1", 5, playbook="other")
    assert await store.failures_in_a_row("crashloop", 5) == 2
    await _fail(store, "f5", 6)
    assert await store.failures_in_a_row("crashloop", 2) == 2  # never more than the window
    assert await store.failures_in_a_row("other", 3) == 1


async def test_blocked_rejected_and_interrupted_runs_neither_fail_nor_succeed(store: Store) -> None:
    await _fail(store, "f1", 1)
    await _end(store, "f2", 2, RunStatus.REJECTED)
    [blocked] = await recorded(store, intent("f3"))
    await store.block_runs([(blocked.id, "circuit_open: failed")], at(3))
    await _fail(store, "f4", 4)
    assert await store.failures_in_a_row("crashloop", 3) == 2


async def test_a_reset_closes_the_breaker_of_its_playbook_only(store: Store) -> None:
    for i in range(3):
        await _fail(store, f"f{i}", i + 1)
        await _fail(store, f"g{i}", i + 1, playbook="other")
    await store.reset_breaker(BreakerReset("crashloop", "alice", "fixed the image", at(10)))
    assert await store.failures_in_a_row("crashloop", 3) == 0
    assert await store.failures_in_a_row("other", 3) == 3
    await _fail(store, "f9", 11)  # failures after the reset count again
    assert await store.failures_in_a_row("crashloop", 3) == 1
    await store.reset_breaker(BreakerReset("crashloop", "bob", "", at(12)))
    assert await store.failures_in_a_row("crashloop", 3) == 0
    assert {r.status for r in await store.runs()} == {RunStatus.FAILED}  # a reset is not a run


DEFERRED = PlannedStep(
    "rollback",
    "rollout_undo",
    when='alert.status == "firing"',
    deferred="'{{ alert.labels.deployment }}': 'dict object' has no attribute 'deployment'",
    source={"name": "rollback", "action": "rollout_undo", "target": {"namespace": "shop", "name": "x"}},
)


async def test_a_deferred_step_is_kept_then_replaced_by_what_it_rendered_to(store: Store) -> None:
    deferring = dataclasses.replace(intent(), plan=Plan("crashloop", (*PLAN_STEPS, DEFERRED)))
    [run] = await recorded(store, deferring)
    assert run.plan == deferring.plan  # the render error and the step as written come back as they went in
    await store.start_run(run.id, at(1), dry_run=False, reason="")
    rendered = dataclasses.replace(DEFERRED, inputs={"kind": "Deployment", "namespace": "shop", "name": "cart"})
    await store.render_step(run.id, rendered)
    found = await store.run(run.id)
    assert found is not None and found.plan.steps == (*PLAN_STEPS, rendered)
    [history] = await store.run_history(at(0))
    assert history.plan.steps[-1] == rendered  # other runs' guardrails see the objects it named
