"""Each shipped playbook, on the alert kube-prometheus-stack raises, against a cluster shaped like a real one.

The alerts come from the corpus (tests/corpus: kube-prometheus-stack's rules, the labels they really
yield); the cluster is tests/world.py's (Deployments owning ReplicaSets owning Pods, a StatefulSet with
its claim, an HPA at its maximum, a node that stopped posting its status) in kmock's KubernetesEmulator,
driven by the official client. Playbooks run with their real durations on a ``VirtualTimer``: a six-minute
watch takes six virtual minutes and no real ones. Every test asserts the exact writes the run made.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest

from receiver.incidents.severity import Severity
from receiver.kube import Kube
from receiver.playbooks.executor import Outcome, RunOutcome, RunResult, execute
from receiver.playbooks.guardrails import Limits
from receiver.playbooks.model import Playbook, load_dirs, load_file
from receiver.playbooks.plan import AlertFacts, NamespacePolicy, plan, triggers
from receiver.playbooks.remediation import limits_of
from receiver.timer import VirtualTimer
from tests import world
from tests.corpus import CORPUS, CorpusAlert, alert
from tests.test_kube import NOW, kube, put, stored

pytestmark = pytest.mark.kmock(cls=kmock.KubernetesEmulator)
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "playbooks"
CHART = ROOT / "charts" / "receiver" / "playbooks"
WEB_POD = "web-7d4b9c6f5-x2x9z"
API_POD = "api-59b7c6d8f-h2lqp"


def shipped(name: str) -> Playbook:
    found = load_file(SHIPPED / f"{name}.yaml")
    assert isinstance(found, Playbook), found
    return found


def facts(corpus: CorpusAlert) -> AlertFacts:
    return AlertFacts("0123456789abcdef", "firing", corpus.labels, corpus.annotations, NOW - timedelta(minutes=15))


async def run(emulator: Any, name: str, corpus: CorpusAlert, cluster: Kube | None = None) -> RunResult:
    """``name`` planned for ``corpus`` and run to its end against the emulator, in virtual time."""
    alert_facts = facts(corpus)
    playbook = shipped(name)
    assert triggers(playbook, alert_facts)
    planned = plan(playbook, alert_facts, NamespacePolicy(), {"severity": str(Severity.SEV3)})
    assert planned.refused is None, planned.refused

    async def firing() -> bool:
        return True

    timer = VirtualTimer()
    cluster = cluster or kube(emulator)
    return await execute(planned, cluster, still_firing=firing, alert=alert_facts.values(), timer=timer)


def steps(result: RunResult) -> list[tuple[str, Outcome]]:
    return [(s.name, s.outcome) for s in result.steps]


def writes(emulator: Any) -> list[tuple[str, str]]:
    """Every request that changed something: (method, object name), in order."""
    return [(r.method, r.name) for r in emulator if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def image(emulator: Any, name: str) -> str:
    found: str = stored(emulator, world.DEPLOYMENTS, "shop", name)["spec"]["template"]["spec"]["containers"][0]["image"]
    return found


def web_crash() -> CorpusAlert:
    return alert("KubePodCrashLooping", namespace="shop", pod=WEB_POD, container="web")


def api_waiting(reason: str = "ImagePullBackOff") -> CorpusAlert:
    return alert("KubeContainerWaiting", namespace="shop", pod=API_POD, container="api", reason=reason)


def healthy(emulator: Any, objects: Mapping[world.Key, world.Object], *names: str) -> None:
    """The controller's part after a deletion: web's pods ``names`` running and ready (made or replaced)."""
    template = objects[world.PODS, "shop", "web-7d4b9c6f5-k8s7d"]
    for name in names:
        obj = copy.deepcopy(template)
        obj["metadata"] |= {"name": name, "uid": f"uid-{name}"}
        obj["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        obj["status"]["containerStatuses"][0] |= {"ready": True, "restartCount": 0, "state": {"running": {}}}
        obj["status"]["containerStatuses"][0].pop("lastState", None)
        put(emulator, world.PODS, "shop", name, obj)


async def test_a_crash_looping_pod_is_deleted_and_a_recent_rollout_rolled_back_when_its_pods_keep_crashing(
    kmock: Any,
) -> None:
    world.populate(kmock, NOW)
    result = await run(kmock, "kube-pod-crash-looping", web_crash())
    assert result.outcome is RunOutcome.SUCCEEDED, result.reason
    assert steps(result) == [
        ("delete_pod", Outcome.SUCCEEDED),
        ("watch", Outcome.SUCCEEDED),
        ("rollback", Outcome.SUCCEEDED),
    ]
    watch, rollback = result.steps[1], result.steps[2]
    assert watch.seconds == 360.0  # its six minutes, whole, in virtual time
    assert "Deployment shop/web (the owner of Pod/shop/web-7d4b9c6f5-x2x9z) is not healthy after 360s" in watch.reason
    assert "0/3 pods ready; web-7d4b9c6f5-k8s7d: CrashLoopBackOff, 9 restarts" in watch.reason
    assert rollback.effect is not None and rollback.effect.resolved == (
        "Pod/shop/web-7d4b9c6f5-x2x9z",
        "ReplicaSet/shop/web-7d4b9c6f5",
        "Deployment/shop/web",
    )
    assert watch.resolved == rollback.resolved == rollback.effect.resolved  # recorded for the watch too
    assert writes(kmock) == [("DELETE", WEB_POD), ("PATCH", "web")]
    assert image(kmock, "web") == "registry.example.com/shop/web:1.4.2"


async def test_a_crash_looping_pod_whose_replacement_is_healthy_ends_the_run_after_the_deletion(kmock: Any) -> None:
    objects = world.populate(kmock, NOW)
    healthy(kmock, objects, "web-7d4b9c6f5-k8s7d", "web-7d4b9c6f5-q9vzt", "web-7d4b9c6f5-n4w8r")
    result = await run(kmock, "kube-pod-crash-looping", web_crash())
    assert result.outcome is RunOutcome.SUCCEEDED
    assert steps(result) == [("delete_pod", Outcome.SUCCEEDED), ("watch", Outcome.RESOLVED)]
    assert result.steps[1].seconds == 120.0  # ready and without a restart for its two stable minutes
    assert "3/3 pods ready" in result.steps[1].reason
    assert writes(kmock) == [("DELETE", WEB_POD)]
    assert image(kmock, "web") == "registry.example.com/shop/web:1.4.3"


async def test_a_crash_looping_pod_of_an_old_rollout_is_deleted_and_its_workload_left_alone(kmock: Any) -> None:
    world.populate(kmock, NOW)
    later = kube(kmock)
    later.clock = lambda: NOW + timedelta(hours=1)  # web's rollout is now 80 minutes old
    result = await run(kmock, "kube-pod-crash-looping", web_crash(), later)
    assert result.outcome is RunOutcome.SUCCEEDED
    assert steps(result)[-1] == ("rollback", Outcome.SKIPPED)
    assert "more than 1800s: not rolled back" in result.steps[-1].reason
    assert writes(kmock) == [("DELETE", WEB_POD)]


async def test_a_crash_looping_statefulset_pod_is_deleted_and_the_rollback_skipped_saying_why(kmock: Any) -> None:
    world.populate(kmock, NOW)
    result = await run(
        kmock, "kube-pod-crash-looping", alert("KubePodCrashLooping", pod="postgres-0", namespace="shop")
    )
    assert result.outcome is RunOutcome.SUCCEEDED  # no failure toward the playbook's circuit breaker
    assert steps(result) == [
        ("delete_pod", Outcome.SUCCEEDED),
        ("watch", Outcome.SUCCEEDED),
        ("rollback", Outcome.SKIPPED),
    ]
    assert "StatefulSet shop/postgres (the owner of Pod/shop/postgres-0) is not healthy after 360s: 0/1 pods ready" in (
        result.steps[1].reason
    )
    assert (
        result.steps[2].reason
        == "pod shop/postgres-0 is owned by StatefulSet shop/postgres; rollout_undo acts on Deployment"
    )
    assert result.steps[2].resolved == ("Pod/shop/postgres-0", "StatefulSet/shop/postgres")  # what was found
    assert writes(kmock) == [("DELETE", "postgres-0")]


async def test_a_stuck_rollout_is_rolled_back(kmock: Any) -> None:
    world.populate(kmock, NOW)
    result = await run(
        kmock, "kube-deployment-rollout-stuck", alert("KubeDeploymentRolloutStuck", namespace="shop", deployment="api")
    )
    assert result.outcome is RunOutcome.SUCCEEDED
    assert writes(kmock) == [("PATCH", "api")]
    assert image(kmock, "api") == "registry.example.com/shop/api:1.9.0"


async def test_an_image_that_cannot_be_pulled_after_a_recent_rollout_is_rolled_back_once_whatever_alerts_first(
    kmock: Any,
) -> None:
    world.populate(kmock, NOW)
    waiting = await run(kmock, "kube-container-waiting", api_waiting())
    stuck = await run(
        kmock, "kube-deployment-rollout-stuck", alert("KubeDeploymentRolloutStuck", namespace="shop", deployment="api")
    )
    assert waiting.outcome is RunOutcome.SUCCEEDED and stuck.outcome is RunOutcome.SUCCEEDED
    assert waiting.steps[0].effect is not None and waiting.steps[0].effect.resolved[-1] == "Deployment/shop/api"
    assert stuck.steps[0].effect is not None and not stuck.steps[0].effect.changed
    assert writes(kmock) == [("PATCH", "api")]
    assert image(kmock, "api") == "registry.example.com/shop/api:1.9.0"


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"])
def test_only_image_pull_waits_trigger_the_rollback(reason: str) -> None:
    playbook = shipped("kube-container-waiting")
    assert triggers(playbook, facts(api_waiting(reason)))
    for other in ("ContainerCreating", "CreateContainerConfigError"):
        assert not triggers(playbook, facts(api_waiting(other)))


async def test_a_maxed_out_autoscaler_gets_half_again_its_maximum(kmock: Any) -> None:
    world.populate(kmock, NOW)
    hpa = alert("KubeHpaMaxedOut", namespace="shop", horizontalpodautoscaler="checkout")
    result = await run(kmock, "kube-hpa-maxed-out", hpa)
    assert result.outcome is RunOutcome.SUCCEEDED
    assert writes(kmock) == [("PATCH", "checkout")]
    assert stored(kmock, world.HPAS, "shop", "checkout")["spec"]["maxReplicas"] == 12


@pytest.mark.parametrize("variant", ["critical", "warning"])
async def test_a_filling_volume_is_expanded_by_half(kmock: Any, variant: str) -> None:
    world.populate(kmock, NOW)
    filling = alert("KubePersistentVolumeFillingUp", variant, namespace="shop", persistentvolumeclaim="data-postgres-0")
    result = await run(kmock, "kube-persistent-volume-filling-up", filling)
    assert result.outcome is RunOutcome.SUCCEEDED, result.reason
    assert writes(kmock) == [("PATCH", "data-postgres-0")]
    assert stored(kmock, world.PVCS, "shop", "data-postgres-0")["spec"]["resources"]["requests"]["storage"] == "15Gi"


async def test_a_volume_whose_class_cannot_expand_is_left_alone_and_the_run_says_why(kmock: Any) -> None:
    objects = world.populate(kmock, NOW)
    fixed = copy.deepcopy(objects[world.STORAGECLASSES, None, "standard-rwo"])
    fixed["allowVolumeExpansion"] = False
    put(kmock, world.STORAGECLASSES, None, "standard-rwo", fixed)
    filling = alert(
        "KubePersistentVolumeFillingUp", "critical", namespace="shop", persistentvolumeclaim="data-postgres-0"
    )
    result = await run(kmock, "kube-persistent-volume-filling-up", filling)
    assert result.outcome is RunOutcome.FAILED
    assert "allowVolumeExpansion" in result.reason
    assert writes(kmock) == []


async def test_a_node_that_is_not_ready_is_cordoned_after_approval(kmock: Any) -> None:
    world.populate(kmock, NOW)
    assert limits_of(shipped("kube-node-not-ready"), Limits()).approval  # a person approves first, by default
    result = await run(kmock, "kube-node-not-ready", alert("KubeNodeNotReady", node="worker-2"))
    assert result.outcome is RunOutcome.SUCCEEDED
    assert writes(kmock) == [("PATCH", "worker-2")]
    assert stored(kmock, world.NODES, None, "worker-2")["spec"]["unschedulable"] is True


# Which shipped playbook each corpus alert triggers: only the one written for it, and nothing for the rest.
EXPECTED = {
    "KubePodCrashLooping": {"kube-pod-crash-looping"},
    "KubeDeploymentRolloutStuck": {"kube-deployment-rollout-stuck"},
    "KubeHpaMaxedOut": {"kube-hpa-maxed-out"},
    "KubePersistentVolumeFillingUp": {"kube-persistent-volume-filling-up"},
    "KubeNodeNotReady": {"kube-node-not-ready"},
}


@pytest.mark.parametrize("entry", CORPUS, ids=lambda e: f"{e.name}-{e.variant}" if e.variant else e.name)
def test_each_corpus_alert_triggers_only_the_playbook_written_for_it(entry: Any) -> None:
    playbooks = load_dirs([SHIPPED]).playbooks
    corpus = alert(entry.name, entry.variant)
    triggered = {p.name for p in playbooks if triggers(p, facts(corpus))}
    expected = EXPECTED.get(entry.name, set())
    if entry.name == "KubeContainerWaiting":
        expected = (
            {"kube-container-waiting"} if corpus.labels["reason"] in ("ErrImagePull", "ImagePullBackOff") else set()
        )
    assert triggered == expected


def test_every_shipped_playbook_plans_for_its_corpus_alert_without_refusal() -> None:
    for corpus, name in [
        (web_crash(), "kube-pod-crash-looping"),
        (api_waiting(), "kube-container-waiting"),
        (alert("KubeDeploymentRolloutStuck"), "kube-deployment-rollout-stuck"),
        (alert("KubeHpaMaxedOut"), "kube-hpa-maxed-out"),
        (alert("KubePersistentVolumeFillingUp", "warning"), "kube-persistent-volume-filling-up"),
        (alert("KubeNodeNotReady"), "kube-node-not-ready"),
    ]:
        planned = plan(shipped(name), facts(corpus), NamespacePolicy())
        assert planned.refused is None, (name, planned.refused)


@pytest.mark.parametrize("directory", [SHIPPED, CHART, ROOT / "examples" / "playbooks"], ids=lambda d: d.name)
def test_every_shipped_and_example_playbook_validates_and_each_step_fits_its_time_limit(directory: Path) -> None:
    loaded = load_dirs([directory])
    assert loaded.problems == (), loaded.problems
    assert loaded.playbooks
    for found in loaded.playbooks:
        for step in found.spec.steps:
            assert step.timeout > step.least_time(), (found.name, step.name)
