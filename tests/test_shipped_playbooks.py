"""Each shipped playbook, planned for a realistic alert and executed against the Kubernetes emulator.

Their waits are minutes long; here each ``wait`` step's input is cut to a hundredth of a second, which
changes nothing else of the plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import kmock
import pytest

from receiver.incidents.severity import Severity
from receiver.playbooks.executor import Outcome, RunOutcome, execute
from receiver.playbooks.model import Playbook, load_file
from receiver.playbooks.plan import AlertFacts, NamespacePolicy, Plan, plan
from tests.test_kube import DEPLOYMENTS, NOW, deployment, kube, pod, put, rolled_out, stored

pytestmark = pytest.mark.kmock(cls=kmock.KubernetesEmulator)
SHIPPED = Path(__file__).resolve().parent.parent / "playbooks"


def shipped(name: str) -> Playbook:
    found = load_file(SHIPPED / f"{name}.yaml")
    assert isinstance(found, Playbook), found
    return found


def quick(planned: Plan) -> Plan:
    steps = tuple(
        dataclasses.replace(s, inputs={**s.inputs, "seconds": 0.01}) if s.action == "wait" else s for s in planned.steps
    )
    return dataclasses.replace(planned, steps=steps)


async def run(emulator: Any, name: str, alertname: str, firing: bool = True, **labels: str) -> Any:
    facts = AlertFacts("0123456789abcdef", "firing", {"alertname": alertname, **labels}, {}, NOW)
    planned = quick(plan(shipped(name), facts, NamespacePolicy(), {"severity": str(Severity.SEV2)}))
    assert planned.refused is None

    async def still() -> bool:
        return firing

    still_firing: Callable[[], Awaitable[bool]] = still
    return await execute(planned, kube(emulator), still_firing=still_firing, alert=facts.values())


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


async def test_high_memory_restarts_then_scales_up_by_two(kmock: Any) -> None:
    put(kmock, DEPLOYMENTS, "shop", "cart", deployment(replicas=2))
    result = await run(kmock, "high-memory", "ContainerMemoryHigh", namespace="shop", deployment="cart")
    assert outcomes(result) == [
        ("restart", Outcome.SUCCEEDED),
        ("settle", Outcome.SUCCEEDED),
        ("scale_up", Outcome.SUCCEEDED),
    ]
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
