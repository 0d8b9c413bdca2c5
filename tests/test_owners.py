"""Workload owners (``owner_of``): a step acts on the workload that owns the pod, or that the autoscaler scales,
found at run time through the API, recorded in the run, granted by the RBAC like every other permission.

The cluster is kmock's ``KubernetesEmulator`` holding what a real one holds: a Deployment with two ReplicaSets
(revision annotations, controller ownerReferences with uids) and their pod, a StatefulSet's and a DaemonSet's
pods, a CronJob's Job and its pod, a bare pod, and an autoscaler with its scaleTargetRef.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from prometheus_client import CollectorRegistry

from receiver.app import RUNNER, create_app
from receiver.cluster import ActionFailed
from receiver.kube import Kube
from receiver.playbooks.actions import owners
from receiver.playbooks.actions.base import NamespacePolicy
from receiver.playbooks.actions.owners import Link, chosen, owner, same
from receiver.playbooks.executor import Outcome, RunOutcome, RunResult, execute
from receiver.playbooks.guardrails import targets_of
from receiver.playbooks.model import Playbook, load_file
from receiver.playbooks.permissions import Permission, of_playbooks
from receiver.playbooks.plan import AlertFacts, Plan, plan
from receiver.playbooks.records import StepRecord
from tests.conftest import Clock
from tests.payloads import alert as payload_alert
from tests.test_chart import manifests, remediation_roles
from tests.test_incidents_api import get_json, post
from tests.test_kube import DEPLOYMENTS, HPAS, NOW, kube, put, stored
from tests.test_permissions import _permission
from tests.world import CRONJOBS, DAEMONSETS, JOBS, PODS, REPLICASETS, REVISION, STATEFULSETS

pytestmark = pytest.mark.kmock(cls=kmock.KubernetesEmulator)
ROOT = Path(__file__).resolve().parent.parent
WEB_POD = "web-7d4b9c6f5-x2x9z"


def controller(api_version: str, kind: str, name: str) -> dict[str, Any]:
    """An ownerReference as the controllers write it."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": f"uid-{kind.lower()}-{name}",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def obj(api_version: str, kind: str, name: str, *, owned_by: dict[str, Any] | None = None, **rest: Any) -> Any:
    metadata: dict[str, Any] = {"name": name, "namespace": "shop", "uid": f"uid-{kind.lower()}-{name}"}
    if owned_by is not None:
        metadata["ownerReferences"] = [owned_by]
    metadata.update(rest.pop("metadata", {}))
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **rest}


def template(app: str, image: str, pod_hash: str | None = None) -> dict[str, Any]:
    labels = {"app": app} | ({"pod-template-hash": pod_hash} if pod_hash else {})
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": app, "image": image}]}}


def replica_set(revision: int, pod_hash: str, image: str, created: str) -> Any:
    return obj(
        "apps/v1",
        "ReplicaSet",
        f"web-{pod_hash}",
        owned_by=controller("apps/v1", "Deployment", "web"),
        metadata={"creationTimestamp": created, "annotations": {REVISION: str(revision)}},
        spec={"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template("web", image, pod_hash)},
    )


def pod(name: str, owned_by: dict[str, Any] | None) -> Any:
    return obj("v1", "Pod", name, owned_by=owned_by, spec={"containers": [{"name": "app", "image": "x"}]})


def populate(emulator: Any) -> None:
    """A realistic namespace ``shop``."""
    web = obj(
        "apps/v1",
        "Deployment",
        "web",
        metadata={"annotations": {REVISION: "2"}},
        spec={"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template("web", "web:1.4.3")},
    )
    put(emulator, DEPLOYMENTS, "shop", "web", web)
    put(
        emulator, REPLICASETS, "shop", "web-5c8f7d9b4", replica_set(1, "5c8f7d9b4", "web:1.4.2", "2026-11-21T03:00:00Z")
    )
    put(
        emulator, REPLICASETS, "shop", "web-7d4b9c6f5", replica_set(2, "7d4b9c6f5", "web:1.4.3", "2026-11-22T02:50:00Z")
    )
    put(emulator, PODS, "shop", WEB_POD, pod(WEB_POD, controller("apps/v1", "ReplicaSet", "web-7d4b9c6f5")))
    put(emulator, STATEFULSETS, "shop", "db", obj("apps/v1", "StatefulSet", "db", spec={"replicas": 1}))
    put(emulator, PODS, "shop", "db-0", pod("db-0", controller("apps/v1", "StatefulSet", "db")))
    agent = obj("apps/v1", "DaemonSet", "node-agent", spec={"template": template("node-agent", "agent:2")})
    put(emulator, DAEMONSETS, "shop", "node-agent", agent)
    put(
        emulator,
        PODS,
        "shop",
        "node-agent-7xk2p",
        pod("node-agent-7xk2p", controller("apps/v1", "DaemonSet", "node-agent")),
    )
    put(emulator, CRONJOBS, "shop", "backup", obj("batch/v1", "CronJob", "backup", spec={"schedule": "0 * * * *"}))
    job = obj("batch/v1", "Job", "backup-29410200", owned_by=controller("batch/v1", "CronJob", "backup"))
    put(emulator, JOBS, "shop", "backup-29410200", job)
    backup_pod = pod("backup-29410200-5jz8c", controller("batch/v1", "Job", "backup-29410200"))
    put(emulator, PODS, "shop", "backup-29410200-5jz8c", backup_pod)
    put(emulator, PODS, "shop", "debug-shell", pod("debug-shell", None))
    hpa = obj(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "web",
        spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 10},
    )
    put(emulator, HPAS, "shop", "web", hpa)


def facts(**labels: str) -> AlertFacts:
    """An alert labelled as kube-prometheus' pod and autoscaler alerts are (kube-state-metrics' target labels)."""
    scrape = {
        "job": "kube-state-metrics",
        "service": "kube-prometheus-stack-kube-state-metrics",
        "namespace": "shop",
        "severity": "warning",
    }
    return AlertFacts("0123456789abcdef", "firing", scrape | labels, {}, NOW)


def crashlooping(pod_name: str) -> AlertFacts:
    return facts(alertname="KubePodCrashLooping", pod=pod_name, container="app", reason="CrashLoopBackOff")


def document(*steps: dict[str, Any], name: str = "owners") -> dict[str, Any]:
    return {
        "apiVersion": "receiver/v1",
        "kind": "Playbook",
        "metadata": {"name": name},
        "spec": {"trigger": {"alertname": "KubePodCrashLooping"}, "steps": list(steps)},
    }


def playbook(*steps: dict[str, Any]) -> Playbook:
    return Playbook.model_validate(document(*steps))


OF_POD = {"namespace": "{{ alert.labels.namespace }}", "owner_of": {"kind": "Pod", "name": "{{ alert.labels.pod }}"}}
OF_HPA = {
    "namespace": "{{ alert.labels.namespace }}",
    "owner_of": {"kind": "HorizontalPodAutoscaler", "name": "{{ alert.labels.horizontalpodautoscaler }}"},
}
ROLLBACK = {"name": "rollback", "action": "rollout_undo", "target": OF_POD, "max_age": "30m"}


async def run(k: Kube, alert: AlertFacts, *steps: dict[str, Any]) -> RunResult:
    planned = plan(playbook(*steps), alert, NamespacePolicy())
    assert planned.refused is None, planned.refused

    async def firing() -> bool:
        return True

    return await execute(planned, k, still_firing=firing, alert=alert.values())


def requests(emulator: Any) -> list[tuple[str, str]]:
    return [(r.method, r.url.path) for r in list(emulator)]


# The pure half.


def test_the_controller_reference_is_the_owner_not_another_reference() -> None:
    start = Link("Pod", "shop", "web-1")
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner-of-sorts", "uid": "u0"}  # not a controller
    rs = controller("apps/v1", "ReplicaSet", "web-7d4b9c6f5")
    found = owner(start, {"metadata": {"ownerReferences": [other, rs]}})
    assert found == Link("ReplicaSet", "shop", "web-7d4b9c6f5", "uid-replicaset-web-7d4b9c6f5")
    assert owner(start, {"metadata": {"ownerReferences": [other]}}) is None
    assert owner(start, {"metadata": {}}) is None


def test_a_kind_of_another_api_group_is_not_taken_for_the_built_in_one() -> None:
    argo = controller("argoproj.io/v1alpha1", "Rollout", "web")
    assert owner(Link("ReplicaSet", "shop", "web-1"), {"metadata": {"ownerReferences": [argo]}}) == Link(
        "Rollout (argoproj.io/v1alpha1)", "shop", "web", "uid-rollout-web"
    )
    fake = controller("example.com/v1", "Deployment", "web")
    up = owner(Link("Pod", "shop", "p"), {"metadata": {"ownerReferences": [fake]}})
    assert up is not None and up.kind == "Deployment (example.com/v1)"


def test_an_autoscalers_owner_is_its_scale_target() -> None:
    hpa = {"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}}}
    assert owner(Link("HorizontalPodAutoscaler", "shop", "db"), hpa) == Link("StatefulSet", "shop", "db")
    assert owner(Link("HorizontalPodAutoscaler", "shop", "db"), {"spec": {}}) is None
    unversioned = {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}}  # apiVersion is optional there
    assert owner(Link("HorizontalPodAutoscaler", "shop", "web"), unversioned) == Link("Deployment", "shop", "web")


@pytest.mark.parametrize(
    ("chain", "kinds", "reason"),
    [
        (
            [Link("Pod", "shop", "x")],
            ["Deployment"],
            "pod shop/x has no controller: nothing for rollout_undo to act on",
        ),
        (
            [Link("Pod", "shop", "db-0"), Link("StatefulSet", "shop", "db")],
            ["Deployment"],
            "pod shop/db-0 is owned by StatefulSet shop/db; rollout_undo acts on Deployment",
        ),
        (
            [Link("Pod", "shop", "b-1-x"), Link("Job", "shop", "b-1"), Link("CronJob", "shop", "b")],
            ["Deployment", "StatefulSet"],
            "pod shop/b-1-x is owned by CronJob shop/b (through Job shop/b-1); rollout_undo acts on Deployment or"
            " StatefulSet",
        ),
        (
            [Link("HorizontalPodAutoscaler", "shop", "w"), Link("Rollout (argoproj.io/v1alpha1)", "shop", "w")],
            ["Deployment"],
            "HorizontalPodAutoscaler shop/w scales Rollout (argoproj.io/v1alpha1) shop/w; rollout_undo acts on"
            " Deployment",
        ),
        (
            [Link("HorizontalPodAutoscaler", "shop", "w")],
            ["Deployment"],
            "HorizontalPodAutoscaler shop/w has no scaleTargetRef: nothing for rollout_undo to act on",
        ),
    ],
)
def test_a_chain_that_ends_where_the_action_cannot_act_fails_saying_so(
    chain: list[Link], kinds: list[str], reason: str
) -> None:
    with pytest.raises(ActionFailed) as failed:
        chosen(chain, kinds, "rollout_undo")
    assert failed.value.reason == reason


def test_the_top_of_the_chain_is_chosen_when_the_action_acts_on_its_kind() -> None:
    chain = [Link("Pod", "shop", "w-1-x"), Link("ReplicaSet", "shop", "w-1"), Link("Deployment", "shop", "w")]
    assert chosen(chain, ["Deployment", "StatefulSet"], "scale") == chain[-1]


def test_an_owner_made_again_under_the_same_name_is_not_followed() -> None:
    same(Link("ReplicaSet", "shop", "w-1", "u1"), {"metadata": {"uid": "u1"}})
    with pytest.raises(ActionFailed, match=r"ReplicaSet shop/w-1 is not the one .* \(uid u2, not u1\)"):
        same(Link("ReplicaSet", "shop", "w-1", "u1"), {"metadata": {"uid": "u2"}})


# The model and the plan.


def _load(tmp_path: Path, target: dict[str, Any], action: str = "rollout_undo") -> Playbook | list[Any]:
    document = {
        "apiVersion": "receiver/v1",
        "kind": "Playbook",
        "metadata": {"name": "x"},
        "spec": {"trigger": {"alertname": "X"}, "steps": [{"name": "s", "action": action, "target": target}]},
    }
    file = tmp_path / "x.yaml"
    file.write_text(yaml.safe_dump(document))
    return load_file(file)


@pytest.mark.parametrize(
    ("target", "action", "complaint"),
    [
        ({"namespace": "shop"}, "rollout_undo", "give exactly one of name and owner_of"),
        (OF_POD | {"name": "web"}, "rollout_undo", "give exactly one of name and owner_of"),
        (OF_HPA | {"kind": "DaemonSet"}, "rollout_restart", "a HorizontalPodAutoscaler is never owned by a DaemonSet"),
        (OF_POD | {"kind": "Service"}, "annotate", "a Pod is never owned by a Service"),
        ({"namespace": "shop", "owner_of": {"kind": "Node", "name": "n"}}, "rollout_undo", "owner_of.kind"),
        (OF_POD, "delete_pod", "owner_of"),  # a pod's own step names the pod
    ],
)
def test_the_model_refuses_a_target_that_can_name_nothing(
    tmp_path: Path, target: dict[str, Any], action: str, complaint: str
) -> None:
    problems = _load(tmp_path, target, action)
    assert isinstance(problems, list) and complaint in " ".join(str(p) for p in problems), problems


def test_the_plan_renders_and_checks_the_name_and_the_namespace_of_the_object_named() -> None:
    planned = plan(playbook(ROLLBACK), crashlooping(WEB_POD), NamespacePolicy())
    assert planned.steps[0].inputs == {
        "namespace": "shop",
        "owner_of": {"kind": "Pod", "name": WEB_POD},
        "kinds": ["Deployment"],
        "max_age_seconds": 1800.0,
        "timeout_seconds": 60.0,
    }
    assert targets_of(planned) == {f"Pod/shop/{WEB_POD}"}  # cooldowns and busy targets: the pod stands for its owner
    hostile = plan(playbook(ROLLBACK), crashlooping("x;rm -rf /"), NamespacePolicy())
    assert hostile.refused is not None and "name" in hostile.refused
    denied = plan(playbook(ROLLBACK), crashlooping(WEB_POD), NamespacePolicy(deny=("shop",)))
    assert denied.refused is not None and "namespace 'shop' is denied" in denied.refused


def test_a_kind_given_with_owner_of_is_the_only_owner_accepted() -> None:
    step = {"name": "restart", "action": "rollout_restart", "target": OF_POD | {"kind": "StatefulSet"}}
    [planned] = plan(playbook(step), crashlooping("db-0"), NamespacePolicy()).steps
    assert planned.inputs["kinds"] == ["StatefulSet"]
    [default] = plan(playbook(step | {"target": OF_POD}), crashlooping("db-0"), NamespacePolicy()).steps
    assert default.inputs["kinds"] == ["Deployment", "StatefulSet", "DaemonSet"]


# Against the emulator.


async def test_a_crash_looping_pods_deployment_is_rolled_back_and_the_run_says_through_what(kmock: Any) -> None:
    populate(kmock)
    before = len(list(kmock))
    result = await run(kube(kmock), crashlooping(WEB_POD), ROLLBACK)
    assert result.outcome is RunOutcome.SUCCEEDED, result.reason
    [step] = result.steps
    assert step.effect is not None and step.effect.target == "Deployment/shop/web"
    assert step.effect.resolved == (f"Pod/shop/{WEB_POD}", "ReplicaSet/shop/web-7d4b9c6f5", "Deployment/shop/web")
    assert (step.effect.before["images"], step.effect.after["images"]) == (["web:1.4.3"], ["web:1.4.2"])
    assert StepRecord.of(step).resolved == step.effect.resolved
    assert requests(kmock)[before:] == [
        ("GET", f"/api/v1/namespaces/shop/pods/{WEB_POD}"),
        ("GET", "/apis/apps/v1/namespaces/shop/replicasets/web-7d4b9c6f5"),
        ("GET", "/apis/apps/v1/namespaces/shop/deployments/web"),
        ("GET", "/apis/apps/v1/namespaces/shop/replicasets"),
        ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web"),
    ]
    containers = stored(kmock, DEPLOYMENTS, "shop", "web")["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "web:1.4.2"


async def test_the_owner_is_read_before_an_earlier_step_deletes_the_pod(kmock: Any) -> None:
    populate(kmock)
    delete = {
        "name": "delete",
        "action": "delete_pod",
        "target": {"namespace": "shop", "name": "{{ alert.labels.pod }}"},
    }
    result = await run(kube(kmock), crashlooping(WEB_POD), delete, ROLLBACK)
    assert [s.outcome for s in result.steps] == [Outcome.SUCCEEDED, Outcome.SUCCEEDED], result.reason
    assert result.steps[1].effect is not None and result.steps[1].effect.resolved[-1] == "Deployment/shop/web"
    assert [(r.method, r.url.path) for r in kmock["delete"]] == [("DELETE", f"/api/v1/namespaces/shop/pods/{WEB_POD}")]


@pytest.mark.parametrize(
    ("pod_name", "outcome", "reason"),
    [
        # an owner of another kind: the playbook does not apply there; skipped, so no circuit breaker counts it
        ("db-0", Outcome.SKIPPED, "pod shop/db-0 is owned by StatefulSet shop/db; rollout_undo acts on Deployment"),
        (
            "backup-29410200-5jz8c",
            Outcome.SKIPPED,
            "pod shop/backup-29410200-5jz8c is owned by CronJob shop/backup (through Job shop/backup-29410200);"
            " rollout_undo acts on Deployment",
        ),
        # no owner at all, or no pod: the step fails
        ("debug-shell", Outcome.FAILED, "pod shop/debug-shell has no controller: nothing for rollout_undo to act on"),
        ("gone-1", Outcome.FAILED, "Pod/shop/gone-1: not found (404): its owner cannot be resolved"),
    ],
)
async def test_a_pod_without_an_owner_the_action_handles_changes_nothing_and_says_why(
    kmock: Any, pod_name: str, outcome: Outcome, reason: str
) -> None:
    populate(kmock)
    result = await run(kube(kmock), crashlooping(pod_name), ROLLBACK)
    [step] = result.steps
    run_outcome = RunOutcome.FAILED if outcome is Outcome.FAILED else RunOutcome.SUCCEEDED
    assert (result.outcome, step.outcome, step.reason) == (run_outcome, outcome, reason)
    assert list(kmock["patch"]) == []


async def test_a_failure_after_resolving_names_the_chain(kmock: Any) -> None:
    populate(kmock)
    kmock.objects[kmock.resource(*REPLICASETS), "shop", "web-5c8f7d9b4"].delete()  # no revision to go back to
    result = await run(kube(kmock), crashlooping(WEB_POD), ROLLBACK)
    assert result.steps[0].reason == (
        f"Pod/shop/{WEB_POD} -> ReplicaSet/shop/web-7d4b9c6f5 -> Deployment/shop/web:"
        " Deployment/shop/web: revision 2 is the first: nothing to roll back to"
    )


async def test_a_daemon_sets_pod_restarts_its_daemon_set(kmock: Any) -> None:
    populate(kmock)
    restart = {"name": "restart", "action": "rollout_restart", "target": OF_POD}
    result = await run(kube(kmock), crashlooping("node-agent-7xk2p"), restart)
    effect = result.steps[0].effect
    assert effect is not None and effect.resolved == ("Pod/shop/node-agent-7xk2p", "DaemonSet/shop/node-agent")
    annotations = stored(kmock, DAEMONSETS, "shop", "node-agent")["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"kubectl.kubernetes.io/restartedAt": NOW.isoformat()}


async def test_an_autoscalers_scale_target_is_scaled(kmock: Any) -> None:
    populate(kmock)
    alert = facts(alertname="KubeHpaMaxedOut", horizontalpodautoscaler="web")
    scale = {"name": "scale", "action": "scale", "target": OF_HPA, "by": 2, "max": 8}
    before = len(list(kmock))
    result = await run(kube(kmock), alert, scale)
    effect = result.steps[0].effect
    assert effect is not None and effect.resolved == ("HorizontalPodAutoscaler/shop/web", "Deployment/shop/web")
    assert (effect.before, effect.after) == ({"replicas": 3}, {"replicas": 5})
    assert requests(kmock)[before:] == [
        ("GET", "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/web"),
        ("GET", "/apis/apps/v1/namespaces/shop/deployments/web"),
        ("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web"),
    ]


async def test_without_credentials_an_owner_step_is_a_dry_run_that_says_why() -> None:
    result = await run(Kube(None, dry_run=True), crashlooping(WEB_POD), ROLLBACK)
    [step] = result.steps
    assert step.outcome is Outcome.SUCCEEDED and step.effect is not None and step.effect.dry_run
    assert "no Kubernetes credentials" in step.reason and "the owner was not resolved" in step.reason


async def test_resolving_needs_exactly_what_its_requests_use(kmock: Any) -> None:
    """Across every kind of owner, the requests of owner steps use all the permissions granted, and no other."""
    populate(kmock)
    steps = {
        "rollback": ROLLBACK,
        "restart": {"name": "restart", "action": "rollout_restart", "target": OF_POD},
    }
    used: set[Permission] = set()
    needed: set[Permission] = set()
    for pod_name in (WEB_POD, "db-0", "node-agent-7xk2p", "backup-29410200-5jz8c"):
        for step in steps.values():
            before = len(list(kmock))
            await run(kube(kmock), crashlooping(pod_name), step)
            used |= {_permission(r) for r in list(kmock)[before:]}
            needed |= of_playbooks([playbook(step)])
    assert used == needed
    assert owners.resolving("Pod") == {
        Permission("", "pods", "get"),
        Permission("apps", "replicasets", "get"),
        Permission("batch", "jobs", "get"),
    }


def test_the_rbac_of_an_owner_step_is_resolving_plus_each_kind_of_owner_it_accepts() -> None:
    assert of_playbooks(
        [playbook({"name": "scale", "action": "scale", "target": OF_HPA | {"kind": "Deployment"}, "by": 1})]
    ) == {
        Permission("autoscaling", "horizontalpodautoscalers", "get"),
        Permission("apps", "deployments", "get"),
        Permission("apps", "deployments", "patch"),
    }
    restart = of_playbooks([playbook({"name": "restart", "action": "rollout_restart", "target": OF_POD})])
    assert {(p.resource, p.verb) for p in restart} == {
        ("pods", "get"),
        ("replicasets", "get"),
        ("jobs", "get"),
        ("deployments", "get"),
        ("deployments", "patch"),
        ("statefulsets", "get"),
        ("statefulsets", "patch"),
        ("daemonsets", "get"),
        ("daemonsets", "patch"),
    }


def test_the_chart_grants_owner_steps_what_the_daemon_says() -> None:
    hpa_scale = {"name": "scale", "action": "scale", "target": OF_HPA | {"kind": "StatefulSet"}, "by": 1}
    documents = {
        "crash-rollback": document(ROLLBACK, name="crash-rollback"),
        "hpa-scale": document(hpa_scale, name="hpa-scale"),
    }
    docs = manifests(
        {
            "remediation": {
                "shippedPlaybooks": {p.stem: False for p in (ROOT / "playbooks").glob("*.yaml")},
                "playbooks": documents,
            }
        }
    )
    [role] = remediation_roles(docs, "Role")
    loaded = [Playbook.model_validate(d) for d in documents.values()]
    granted = {
        Permission(g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == of_playbooks(loaded)
    assert {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]} in role["rules"]
    assert {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "patch"]} in role["rules"]
    assert not remediation_roles(docs, "ClusterRole")


def test_a_plan_is_not_changed_by_what_the_run_resolves() -> None:
    planned = plan(playbook(ROLLBACK), crashlooping(WEB_POD), NamespacePolicy())
    assert isinstance(planned, Plan) and "owner_chain" not in planned.steps[0].inputs


async def _rolling_back(aiohttp_client: Any, make_settings: Any, clock: Clock, kmock: Any, tmp_path: Path) -> Any:
    """The app, its engine inline, with the ROLLBACK playbook and a Kubernetes client for the emulator."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "rollback.yaml").write_text(yaml.safe_dump(document(ROLLBACK, name="rollback")))
    settings = make_settings(remediation={"playbook_dirs": [str(playbooks)]})
    app = create_app(settings, registry=CollectorRegistry(), clock=clock, engine="inline", kube=kube(kmock))
    return await aiohttp_client(app)


async def test_the_runs_api_shows_what_the_target_was_resolved_through(
    aiohttp_client: Any, make_settings: Any, clock: Clock, kmock: Any, tmp_path: Path
) -> None:
    populate(kmock)
    client = await _rolling_back(aiohttp_client, make_settings, clock, kmock, tmp_path)
    labels = {k: v for k, v in crashlooping(WEB_POD).labels.items() if k != "alertname"}
    await post(client, payload_alert("KubePodCrashLooping", **labels))
    await client.server.app[RUNNER].drain()
    [listed] = (await get_json(client, "/api/v1/runs"))["runs"]
    run = await get_json(client, f"/api/v1/runs/{listed['id']}")
    assert run["status"] == "succeeded", run["reason"]
    [step] = run["steps"]
    assert step["resolved"] == [f"Pod/shop/{WEB_POD}", "ReplicaSet/shop/web-7d4b9c6f5", "Deployment/shop/web"]
    assert (step["before"]["images"], step["after"]["images"]) == (["web:1.4.3"], ["web:1.4.2"])
    assert run["plan"][0]["inputs"]["owner_of"] == {"kind": "Pod", "name": WEB_POD}


async def test_two_pods_of_one_deployment_are_two_runs_and_only_one_acts_on_their_owner(
    aiohttp_client: Any, make_settings: Any, clock: Clock, kmock: Any, tmp_path: Path
) -> None:
    """The guardrails judge the owner found at run time: the second run leaves the Deployment alone, unfailed."""
    populate(kmock)
    twin = "web-7d4b9c6f5-k8s7d"
    put(kmock, PODS, "shop", twin, pod(twin, controller("apps/v1", "ReplicaSet", "web-7d4b9c6f5")))
    client = await _rolling_back(aiohttp_client, make_settings, clock, kmock, tmp_path)
    posted = [{k: v for k, v in crashlooping(name).labels.items() if k != "alertname"} for name in (WEB_POD, twin)]
    await post(client, *(payload_alert("KubePodCrashLooping", **labels) for labels in posted))
    await client.server.app[RUNNER].drain()
    listed = (await get_json(client, "/api/v1/runs"))["runs"]
    assert sorted(r["status"] for r in listed) == ["succeeded", "succeeded"]
    steps = [(await get_json(client, f"/api/v1/runs/{r['id']}"))["steps"][0] for r in listed]
    acted = [s for s in steps if s["outcome"] == "succeeded"]
    [left] = [s for s in steps if s["outcome"] == "skipped"]
    assert len(acted) == 1 and acted[0]["after"]["images"] == ["web:1.4.2"]
    busy = "target_busy: Deployment/shop/web: another run is busy with it"
    cooled = "cooldown: a run acted on the same objects 0:00:00 ago (cooldown 0:10:00)"  # if the first had ended
    assert left["reason"] in (f"its owner is left alone: {busy}", f"its owner is left alone: {cooled}")
    assert len(list(kmock["patch"])) == 1
