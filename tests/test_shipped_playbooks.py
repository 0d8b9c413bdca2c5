"""Each shipped playbook, planned for a realistic alert and executed against the Kubernetes emulator.

With their real durations: the executor's time is a ``VirtualTimer``, so a five-minute ``wait`` takes
five virtual minutes (recorded as such) and no real ones. Every shipped playbook, in ``playbooks/`` and in
the chart, validates and can finish: each of its waits fits in its step's time limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest

from receiver.incidents.severity import Severity
from receiver.kube import Kube
from receiver.playbooks.executor import Outcome, RunOutcome, execute
from receiver.playbooks.model import Playbook, load_dirs, load_file
from receiver.playbooks.plan import AlertFacts, NamespacePolicy, plan
from receiver.timer import VirtualTimer
from tests.corpus import alert
from tests.test_kube import DEPLOYMENTS, NOW, deployment, kube, pod, put, rolled_out, stored

pytestmark = pytest.mark.kmock(cls=kmock.KubernetesEmulator)
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "playbooks"
CHART = ROOT / "charts" / "receiver" / "playbooks"


def shipped(name: str) -> Playbook:
    found = load_file(SHIPPED / f"{name}.yaml")
    assert isinstance(found, Playbook), found
    return found


async def run(emulator: Any, name: str, alertname: str, firing: bool = True, **labels: str) -> Any:
    facts = AlertFacts("0123456789abcdef", "firing", {"alertname": alertname, **labels}, {}, NOW)
    planned = plan(shipped(name), facts, NamespacePolicy(), {"severity": str(Severity.SEV2)})
    assert planned.refused is None

    async def still() -> bool:
        return firing

    still_firing: Callable[[], Awaitable[bool]] = still
    timer = VirtualTimer()
    result = await execute(planned, kube(emulator), still_firing=still_firing, alert=facts.values(), timer=timer)
    assert timer.monotonic() == sum(s.seconds for s in result.steps)  # steps' times are the timer's
    return result


def outcomes(result: Any) -> list[tuple[str, Outcome]]:
    return [(s.name, s.outcome) for s in result.steps]


async def test_crashloop_deletes_the_pod_then_rolls_back_a_recent_rollout(kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-7d9f-x", pod("cart-7d9f-x"))
    rolled_out(kmock, "2026-11-22T02:50:00Z")  # ten minutes ago
    result = await run(
        kmock, "crashloop", "KubePodCrashLooping", namespace="shop", pod="cart-7d9f-x", deployment="cart"
    )
    assert result.outcome is RunOutcome.SUCCEEDED
    assert outcomes(result) == [
        ("delete_pod", Outcome.SUCCEEDED),
        ("settle", Outcome.SUCCEEDED),
        ("rollback", Outcome.SUCCEEDED),
    ]
    assert result.steps[1].seconds == 120.0  # its two minutes, whole
    assert [r.method for r in kmock["delete"]] == ["DELETE"]
    template = stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "cart:1"


async def test_crashloop_stops_after_the_deletion_when_the_alert_resolves(kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-7d9f-x", pod("cart-7d9f-x"))
    rolled_out(kmock, "2026-11-22T02:50:00Z")
    result = await run(
        kmock, "crashloop", "KubePodCrashLooping", False, namespace="shop", pod="cart-7d9f-x", deployment="cart"
    )
    assert outcomes(result)[2] == ("rollback", Outcome.SKIPPED)
    assert stored(kmock, DEPLOYMENTS, "shop", "cart")["spec"]["template"]["spec"]["containers"][0]["image"] == "cart:2"


CRASHLOOPING = alert("KubePodCrashLooping", namespace="shop", pod="cart-7d9f-x", container="cart").labels
"""KubePodCrashLooping as kube-prometheus-stack raises it: no deployment label."""


def without_name(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "alertname"}


async def test_crashloop_on_the_real_alert_is_not_refused_and_defers_the_rollback(kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-7d9f-x", pod("cart-7d9f-x"))
    result = await run(
        kmock, "crashloop", "KubePodCrashLooping", False, **without_name(CRASHLOOPING)
    )  # resolved after the wait
    assert outcomes(result) == [
        ("delete_pod", Outcome.SUCCEEDED),
        ("settle", Outcome.SUCCEEDED),
        ("rollback", Outcome.SKIPPED),
    ]
    assert result.outcome is RunOutcome.SUCCEEDED and [r.method for r in kmock["delete"]] == ["DELETE"]


async def test_crashloop_on_the_real_alert_still_firing_fails_at_the_rollback_saying_why(kmock: Any) -> None:
    put(kmock, ("", "v1", "pods"), "shop", "cart-7d9f-x", pod("cart-7d9f-x"))
    result = await run(kmock, "crashloop", "KubePodCrashLooping", **without_name(CRASHLOOPING))
    assert outcomes(result)[2] == ("rollback", Outcome.FAILED)
    assert "deferred step cannot be rendered" in result.reason and "deployment" in result.reason
    assert list(kmock["patch"]) == []


async def test_high_memory_restarts_then_scales_up_by_two(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment(replicas=2))
    result = await run(kmock, "high-memory", "ContainerMemoryHigh", namespace="shop", deployment="cart")
    assert outcomes(result) == [
        ("restart", Outcome.SUCCEEDED),
        ("settle", Outcome.SUCCEEDED),
        ("scale_up", Outcome.SUCCEEDED),
    ]
    assert result.steps[1].seconds == 300.0
    obj = stored(kmock, DEPLOYMENTS, "shop", "cart")
    assert obj["spec"]["replicas"] == 4
    assert "kubectl.kubernetes.io/restartedAt" in obj["spec"]["template"]["metadata"]["annotations"]


async def test_api_error_rate_rolls_back_a_recent_rollout_and_does_not_notify(kmock: Any) -> None:
    rolled_out(kmock, "2026-11-22T02:50:00Z")
    result = await run(kmock, "api-error-rate", "HighErrorRate", namespace="shop", deployment="cart")
    assert outcomes(result) == [("rollback", Outcome.SUCCEEDED), ("tell", Outcome.SKIPPED)]


async def test_api_error_rate_leaves_an_old_rollout_and_would_notify(kmock: Any) -> None:
    rolled_out(kmock, "2026-11-21T22:00:00Z")  # five hours ago
    result = await run(kmock, "api-error-rate", "HighErrorRate", namespace="shop", deployment="cart")
    assert outcomes(result) == [("rollback", Outcome.SKIPPED), ("tell", Outcome.SKIPPED)]
    assert "not wired yet" in result.steps[1].reason  # the condition held: it is notify that waits for its issue


async def test_db_pool_exhausted_raises_the_pool_then_restarts(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "orders", deployment("orders"))
    result = await run(
        kmock, "db-pool-exhausted", "DatabaseConnectionPoolExhausted", namespace="shop", deployment="orders"
    )
    assert outcomes(result) == [("larger_pool", Outcome.SUCCEEDED), ("restart", Outcome.SUCCEEDED)]
    template = stored(kmock, DEPLOYMENTS, "shop", "orders")["spec"]["template"]
    assert template["spec"]["containers"][0]["env"] == [{"name": "DB_POOL_SIZE", "value": "50"}]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]


async def test_capacity_saturation_scales_up_within_its_limit(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "search", deployment("search", replicas=19))
    result = await run(kmock, "capacity-saturation", "CapacitySaturation", namespace="shop", deployment="search")
    assert outcomes(result) == [("scale_up", Outcome.SUCCEEDED)]
    assert stored(kmock, DEPLOYMENTS, "shop", "search")["spec"]["replicas"] == 20  # 19 + 2, clamped to 20


def every_shipped() -> list[Playbook]:
    found: list[Playbook] = []
    for directory in (SHIPPED, CHART):  # each on its own: the chart ships copies under the same names
        loaded = load_dirs([directory])
        assert loaded.problems == (), loaded.problems
        found += loaded.playbooks
    return found


def test_every_shipped_playbook_validates_and_each_step_fits_its_time_limit() -> None:
    playbooks = every_shipped()
    assert {p.name for p in playbooks} >= {"crashloop", "high-memory"}
    for found in playbooks:
        for step in found.spec.steps:
            assert step.timeout > step.least_time(), (found.name, step.name)
    waits = [s for p in playbooks for s in p.spec.steps if s.action == "wait"]
    assert waits and all(s.least_time() >= timedelta(minutes=2) for s in waits)  # real minutes, not cut


@pytest.mark.parametrize("found", every_shipped(), ids=lambda p: p.name)
async def test_every_shipped_wait_finishes_within_its_limit(found: Playbook) -> None:
    """Each waiting step alone, as the executor runs it: it ends by itself, not by its time limit."""
    for step in found.spec.steps:
        if step.action not in ("wait", "wait_for_resolution"):
            continue
        alone = found.model_copy(update={"spec": found.spec.model_copy(update={"steps": [step]})})
        planned = plan(alone, AlertFacts("f", "firing", {}, {}, NOW), NamespacePolicy())
        timer = VirtualTimer()

        async def firing() -> bool:
            return True

        result = await execute(planned, Kube(None, dry_run=True), still_firing=firing, alert={}, timer=timer)
        [done] = result.steps
        assert done.outcome is Outcome.SUCCEEDED, (found.name, step.name, done.reason)
        if step.action == "wait":
            assert done.seconds == step.least_time().total_seconds() < step.timeout.total_seconds()
