"""The Helm chart, rendered by Helm's own engine (helm-python-sdk) for several value sets, and checked.

Every rendered manifest is validated against the schemas of a current
Kubernetes release (kubernetes-validate, strict: an unknown field fails);
the chart is linted; its RBAC is compared with what the deployed playbooks
need (``receiver.permissions``), its config with what the daemon accepts,
its alerts with ``promtool``, and its Alertmanager snippet with ``amtool``.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from receiver import cli
from receiver.config import WatchdogSettings, load
from receiver.durations import parse_duration
from receiver.evidence import permissions as evidence_permissions
from receiver.playbooks.model import load_dirs
from receiver.playbooks.permissions import CLUSTER_SCOPED, Permission, of_playbooks
from tests.e2e.harness import require_binary

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "receiver"
RELEASE, NAMESPACE = "rx", "monitoring"
KUBERNETES = kubernetes_validate.latest_version()
CORDON_PLAYBOOK = {
    "apiVersion": "receiver/v1",
    "kind": "Playbook",
    "metadata": {"name": "node-pressure"},
    "spec": {
        "trigger": {"alertname": "KubeNodePressure"},
        "steps": [
            {"name": "cordon", "action": "cordon", "target": {"name": "{{ alert.labels.node }}"}},
            {
                "name": "tag",
                "action": "annotate",
                "target": {"kind": "Service", "namespace": "shop", "name": "x"},
                "values": {"example.com/pressure": "true"},
            },
        ],
    },
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "persistence-off": {"persistence": {"enabled": False}},
    "cluster-role": {
        "remediation": {
            "clusterWide": True,
            "dryRun": False,
            "guardrails": {"cooldown": "30m", "approval": "required"},
        },
        "config": {"incidents": {"correlation": {"window": "10m"}}},
    },
    "monitoring-on": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "podDisruptionBudget": {"enabled": True},
        "networkPolicy": {"enabled": True, "extraFrom": [{"podSelector": {"matchLabels": {"app": "chatops"}}}]},
    },
    "remediation-off": {"remediation": {"enabled": False}},
    "nothing-read": {"remediation": {"enabled": False}, "evidence": {"enabled": False}},
    "evidence-namespaced": {"evidence": {"namespaces": ["shop", "billing"]}},
    "own-playbooks": {
        "remediation": {
            "namespaces": {"allow": ["shop", "billing"]},
            "shippedPlaybooks": {  # the two that act on named Deployments and autoscalers stay on
                "kube-pod-crash-looping": False,
                "kube-container-waiting": False,
                "kube-persistent-volume-filling-up": False,
                "kube-node-not-ready": False,
            },
            "playbooks": {"node-pressure": CORDON_PLAYBOOK},
        },
        "auth": {"existingSecret": "my-tokens"},
    },
    "notifications": {
        "config": {
            "notify": {
                "external_url": "https://receiver.example.com",
                "channels": {
                    "email": {
                        "type": "email",
                        "host": "smtp.example.com",
                        "username": "receiver",
                        "password": "env:SMTP_PASSWORD",
                        "sender": "receiver@example.com",
                        "to": ["platform-oncall@example.com"],
                    },
                    "pagerduty": {"type": "pagerduty", "routing_key": "env:PAGERDUTY_ROUTING_KEY"},
                },
            }
        },
        "notify": {"secretEnvFrom": [{"secretRef": {"name": "receiver-notify"}}]},
    },
}


def render(values: dict[str, Any], release: str = RELEASE) -> dict[str, str]:
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=release, namespace=NAMESPACE, is_install=True)


def alertmanager_snippet(release: str = RELEASE) -> str:
    """The Alertmanager configuration the install's NOTES print."""
    notes = render({}, release)["receiver/templates/NOTES.txt"]
    return notes.split("# --- alertmanager.yml ---\n")[1].split("# --- end ---")[0]


def manifests(values: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for path, text in sorted(render(values).items()):
        if path.endswith(".txt"):
            continue
        found += [doc for doc in yaml.safe_load_all(text) if doc]
    return found


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    [found] = [d for d in of_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    return found


@pytest.fixture(params=sorted(VALUE_SETS), scope="module")
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    values = VALUE_SETS[request.param]
    return request.param, values, manifests(values)


def test_lint_is_clean_for_every_value_set(case: Any) -> None:
    _, values, _ = case
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_manifest_is_valid_for_a_current_kubernetes(case: Any) -> None:
    _, _, docs = case
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: not in Kubernetes' schemas; the rules are checked by promtool below
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        assert doc["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == RELEASE


def test_rbac_is_exactly_what_the_deployed_playbooks_need_and_never_a_wildcard(case: Any, tmp_path: Path) -> None:
    name, values, docs = case
    needed = of_playbooks(_deployed_playbooks(docs, tmp_path))
    granted = {kind: _granted(remediation_roles(docs, kind)) for kind in ("Role", "ClusterRole")}
    namespaced = {p for p in needed if p.resource not in CLUSTER_SCOPED}
    cluster = needed - namespaced
    remediation = values.get("remediation", {})
    if remediation.get("clusterWide"):
        assert granted["Role"] == set() and granted["ClusterRole"] == needed
    else:
        assert granted["Role"] == namespaced and granted["ClusterRole"] == cluster
        allowed = remediation.get("namespaces", {}).get("allow") or [NAMESPACE]
        expected = sorted(allowed) if namespaced else []
        assert sorted(r["metadata"]["namespace"] for r in remediation_roles(docs, "Role")) == expected
    for rule in (r for kind in ("Role", "ClusterRole") for d in of_kind(docs, kind) for r in d["rules"]):
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    bindings = of_kind(docs, "RoleBinding") + of_kind(docs, "ClusterRoleBinding")
    assert len(bindings) == len(of_kind(docs, "Role")) + len(of_kind(docs, "ClusterRole"))
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"{RELEASE}-receiver", "namespace": NAMESPACE}
        ]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    evidence = values.get("evidence", {}).get("enabled", True)
    assert pod["automountServiceAccountToken"] is (bool(needed) or evidence), name


def remediation_roles(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The Roles or ClusterRoles of playbooks (not evidence's)."""
    return [d for d in of_kind(docs, kind) if not d["metadata"]["name"].endswith("-evidence")]


def evidence_roles(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in of_kind(docs, kind) if d["metadata"]["name"].endswith("-evidence")]


def test_evidence_reads_exactly_what_its_registry_names_and_can_be_switched_off(case: Any) -> None:
    name, values, docs = case
    wanted = values.get("evidence", {})
    reads = {Permission(r.group, r.resource, r.verb) for r in evidence_permissions.READS}
    cluster = {p for p in reads if p.resource in evidence_permissions.CLUSTER_SCOPED}
    roles, cluster_roles = evidence_roles(docs, "Role"), evidence_roles(docs, "ClusterRole")
    if not wanted.get("enabled", True):
        assert roles == cluster_roles == [], name
        assert yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["config.yaml"])["evidence"]["enabled"] is False
        return
    if wanted.get("namespaces"):
        assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(wanted["namespaces"])
        assert all(_granted([r]) == reads - cluster for r in roles) and _granted(cluster_roles) == cluster
    else:
        assert roles == [] and _granted(cluster_roles) == reads
    assert not any(p.resource in ("secrets", "configmaps") or p.verb not in ("get", "list") for p in reads)
    assert yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["config.yaml"])["evidence"]["enabled"] is True


def test_the_charts_evidence_table_is_generated_from_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["evidence", "rbac"]) == 0
    generated = capsys.readouterr().out
    assert (CHART / "files" / "evidence.yaml").read_text() == generated == evidence_permissions.table_text(), (
        f"regenerate it: {evidence_permissions.COMMAND}"
    )


def test_the_shipped_playbooks_give_this_role() -> None:
    """What the six shipped playbooks' steps need, each rule for a reason, and nothing else."""
    docs = manifests({})
    [role] = remediation_roles(docs, "Role")
    assert role["rules"] == [
        # kube-pod-crash-looping's watch (wait_for_ready) accepts any of a pod's workloads: it reads each kind
        {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get"]},
        # rollout_undo (crash-looping, container-waiting, rollout-stuck) reads and patches the Deployment
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
        # get: a pod's owner through its ReplicaSet; list: a rollback's revisions and the watched pods' ReplicaSets
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"]},
        # kube-hpa-maxed-out's raise_hpa_max
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "patch"]},
        # resolving a pod's owner follows a Job to its CronJob
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
        # kube-persistent-volume-filling-up's expand_pvc
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "patch"]},
        # delete_pod; get: a pod's owner; list: the watched workload's pods
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get", "list"]},
    ]
    [cluster] = remediation_roles(docs, "ClusterRole")
    assert cluster["rules"] == [
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get"]},  # allowVolumeExpansion
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]},  # kube-node-not-ready's cordon
    ]


def test_a_cordoning_playbook_gets_nodes_from_a_cluster_role_and_nothing_else_cluster_wide() -> None:
    docs = manifests(VALUE_SETS["own-playbooks"])
    [nodes] = remediation_roles(docs, "ClusterRole")
    assert nodes["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}]
    roles = of_kind(docs, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"shop", "billing"}
    assert {
        (g, r) for role in roles for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    } == {
        ("", "services"),
        ("apps", "deployments"),
        ("apps", "replicasets"),  # kube-deployment-rollout-stuck's rollback lists the revisions
        ("autoscaling", "horizontalpodautoscalers"),
    }


def test_remediation_off_means_no_rbac_no_token_no_playbooks() -> None:
    docs = manifests(VALUE_SETS["nothing-read"])  # with evidence off too: evidence alone reads the cluster
    assert not [d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
    only_evidence = manifests(VALUE_SETS["remediation-off"])
    roles = {d["metadata"]["name"] for d in only_evidence if d["kind"].endswith("Role")}
    assert roles == {f"{RELEASE}-receiver-evidence"}
    assert [c["metadata"]["name"] for c in of_kind(docs, "ConfigMap")] == [f"{RELEASE}-receiver-config"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    assert (
        yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["config.yaml"])["remediation"]["playbook_dirs"] == []
    )


def test_the_pod_is_locked_down_and_outlives_the_daemons_shutdown(case: Any) -> None:
    _, _, docs = case
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["limits"]["memory"]
    config = yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["config.yaml"])
    engine_stop = 5  # the web process kills an engine that has not stopped 5 s after its stdin closed
    assert (
        pod["terminationGracePeriodSeconds"] > parse_duration(config["shutdown_timeout"]).total_seconds() + engine_stop
    )
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/data", "/tmp"} <= mounts  # the only places it writes, with a read-only root
    assert ":latest" not in container["image"] and container["image"].endswith(":0.1.0")


def test_only_alertmanager_prometheus_and_the_peers_named_reach_the_pod() -> None:
    policy = one(manifests(VALUE_SETS["monitoring-on"]), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert [p["podSelector"]["matchLabels"] for p in peers] == [
        {"app.kubernetes.io/name": "alertmanager"},
        {"app.kubernetes.io/name": "prometheus"},
        {"app": "chatops"},
    ]
    assert {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]} == {"http"}


def test_the_service_monitor_scrapes_the_services_metrics_port() -> None:
    docs = manifests(VALUE_SETS["monitoring-on"])
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # what the operator selects on
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert not of_kind(manifests({}), "ServiceMonitor")


def test_persistence_is_a_claim_or_an_empty_dir() -> None:
    on = manifests({})
    claim = one(on, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in one(on, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    off = manifests(VALUE_SETS["persistence-off"])
    assert not of_kind(off, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in one(off, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_the_rendered_config_and_playbooks_are_what_the_daemon_accepts(case: Any, tmp_path: Path) -> None:
    name, values, docs = case
    playbooks = _deployed_playbooks(docs, tmp_path)
    raw = yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["config.yaml"])
    if raw["remediation"]["playbook_dirs"]:
        raw["remediation"]["playbook_dirs"] = [str(tmp_path / "playbooks")]  # where the pod mounts them
    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump(raw))
    env = {"SMTP_PASSWORD": "s3cret", "PAGERDUTY_ROUTING_KEY": "R0123456789ABCDEF0123456789ABCDE"}
    settings = load(file, env)  # raises ConfigError naming the key if the daemon would refuse to start
    assert settings.data_dir == Path("/data") and settings.shutdown_timeout.total_seconds() == 10
    assert settings.remediation.guardrails.dry_run is values.get("remediation", {}).get("dryRun", True)
    if name == "cluster-role":  # the user's settings reach the daemon beside the chart's own
        assert settings.remediation.guardrails.cooldown.total_seconds() == 1800
        assert settings.remediation.guardrails.approval == "required"
        assert settings.incidents.correlation.window.total_seconds() == 600
        assert settings.remediation.namespaces.allow == []  # cluster-wide: every namespace not denied
    if name == "notifications":  # the channels' secrets come from the Secrets the pod reads as its environment
        [container] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": "receiver-notify"}}]
        assert sorted(settings.notify.channels) == ["email", "pagerduty"]
    if name == "default":
        assert sorted(p.name for p in playbooks) == sorted(p.stem for p in (ROOT / "playbooks").glob("*.yaml"))


def test_the_charts_shipped_playbooks_are_the_repositorys() -> None:
    repo = {p.name: p.read_text() for p in (ROOT / "playbooks").glob("*.yaml")}
    chart = {p.name: p.read_text() for p in (CHART / "playbooks").glob("*.yaml")}
    assert chart == repo, "copy playbooks/*.yaml to charts/receiver/playbooks/"
    assert set(yaml.safe_load((CHART / "values.yaml").read_text())["remediation"]["shippedPlaybooks"]) == {
        Path(name).stem for name in repo
    }


def test_an_existing_claim_a_digest_and_an_existing_service_account_are_used_as_given() -> None:
    digest = "sha256:" + "ab" * 32
    docs = manifests(
        {
            "persistence": {"existingClaim": "receiver-data-old"},
            "image": {"digest": digest},
            "serviceAccount": {"create": False, "name": "remediator"},
        }
    )
    assert not of_kind(docs, "PersistentVolumeClaim") and not of_kind(docs, "ServiceAccount")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "receiver-data-old"
    assert pod["containers"][0]["image"] == f"ghcr.io/receiver/receiver@{digest}"
    assert pod["serviceAccountName"] == "remediator"
    [binding] = of_kind(docs, "RoleBinding")
    assert binding["subjects"][0]["name"] == "remediator"


def test_tokens_are_generated_different_or_taken_from_an_existing_secret() -> None:
    secret = one(manifests({}), "Secret")
    tokens = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(tokens) == {"webhook-token", "api-token"}
    assert tokens["webhook-token"] != tokens["api-token"] and all(len(t) == 40 for t in tokens.values())
    docs = manifests(VALUE_SETS["own-playbooks"])
    assert not of_kind(docs, "Secret")
    env = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in env} == {"my-tokens"}
    with pytest.raises(helm.HelmRenderError, match="must differ"):
        render({"auth": {"webhookToken": "same-token-0123456789", "apiToken": "same-token-0123456789"}})


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),
        ({"image": {"tag": "latest"}}, "/image/tag"),
        ({"remediation": {"namespaces": {"allow": ["Shop_1"]}}}, "/remediation/namespaces/allow/0"),
        ({"config": {"listen": "0.0.0.0:80"}}, "/config"),
        ({"remediation": {"guardrails": {"dry_run": True}}}, "/remediation/guardrails"),
        ({"auth": {"apiToken": "short"}}, "/auth/apiToken"),
    ],
)
def test_bad_values_are_refused_with_the_key(values: dict[str, Any], complaint: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError, match=complaint.replace("/", ".")):
        chart.validate_schema(values)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"remediation": {"namespaces": {"allow": ["kube-system"]}}}, "kube-system is both allowed and denied"),
        (
            {
                "remediation": {
                    "shippedPlaybooks": {"kube-pod-crash-looping": True},
                    "playbooks": {"x": {"spec": {"steps": [{"name": "s", "action": "exec"}]}}},
                }
            },
            'unknown action "exec"',
        ),
    ],
)
def test_values_the_schema_cannot_see_fail_the_render_with_a_reason(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=complaint):
        render(values)


def test_the_alerts_on_the_daemons_health_pass_promtool_and_fire_when_they_should(tmp_path: Path) -> None:
    rule = one(manifests(VALUE_SETS["monitoring-on"]), "PrometheusRule")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    promtool = require_binary("promtool", "prometheus")
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "ReceiverDown",
        "ReceiverWebhookRejected",
        "ReceiverOverloaded",
        "ReceiverDeadLetters",
        "ReceiverPlaybookCircuitOpen",
        "ReceiverProcessingStalled",
        "ReceiverWatchdogMissing",
        "ReceiverEvidenceFailing",
        "ReceiverEvidenceWorkerRestarting",
        "ReceiverNotificationsFailing",
        "ReceiverOutboxStuck",
        "ReceiverNotifierRestarting",
        "ReceiverNotificationsRefused",
        "ReceiverNotificationsInterrupted",
        "ReceiverOnCallCoverageGap",
        "ReceiverEscalationRestarting",
        "ReceiverNobodyOnCall",
    } <= names
    tests = tmp_path / "rules_test.yaml"
    annotations = {r["alert"]: r["annotations"] for g in rule["spec"]["groups"] for r in g["rules"]}
    tests.write_text(yaml.safe_dump(_rule_tests(rules.name, annotations)))
    tested = subprocess.run(
        [promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _rule_tests(rules: str, annotations: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Series that make some alerts fire, and the alerts promtool must find (labels and annotations)."""
    sel = f'job="{RELEASE}-receiver",namespace="{NAMESPACE}"'

    def expect(alert: str, **labels: str) -> dict[str, Any]:
        text = {
            k: v.replace("{{ $labels.playbook }}", labels.get("playbook", ""))
            .replace("{{ $labels.channel }}", labels.get("channel", ""))
            .replace("{{ $labels.schedule }}", labels.get("schedule", ""))
            .replace("{{ $labels.policy }}", labels.get("policy", ""))
            for k, v in annotations[alert].items()
        }
        return {"exp_labels": labels, "exp_annotations": text}

    instance = {"job": f"{RELEASE}-receiver", "namespace": NAMESPACE}
    captures = "receiver_evidence_captures_total"
    failed, sent = "receiver_notifications_failed_total", "receiver_notifications_sent_total"
    interrupted = "receiver_notifications_interrupted_total"
    gap = "receiver_oncall_coverage_gap_seconds"
    return {
        "rule_files": [rules],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"up{{{sel}}}", "values": "1 1 0x10"},
                    {
                        "series": f'receiver_playbook_circuit_open{{{sel},playbook="kube-pod-crash-looping"}}',
                        "values": "0 0 1x5",
                    },
                    {
                        "series": f'receiver_playbook_circuit_open{{{sel},playbook="kube-hpa-maxed-out"}}',
                        "values": "0x7",
                    },
                    {"series": f'receiver_notifications_total{{{sel},result="rejected_auth"}}', "values": "0+10x30"},
                    {"series": f"receiver_dead_letters_total{{{sel}}}", "values": "0 0 0 1 1 1"},
                    # a stalled engine: from minute 2 the oldest notification waits on, a minute more each minute
                    {"series": f"receiver_inbox_oldest_unprocessed_age_seconds{{{sel}}}", "values": "0 0 60+60x20"},
                    {"series": f"receiver_watchdog_missing{{{sel}}}", "values": "0 0 0 1x10"},
                    # evidence: every capture fails (no credentials), and the worker failed three times
                    {"series": f'{captures}{{{sel},outcome="no_credentials"}}', "values": "0+1x10"},
                    {"series": f'{captures}{{{sel},outcome="captured"}}', "values": "0x10"},
                    {"series": f"receiver_evidence_worker_restarts_total{{{sel}}}", "values": "0 1 2 3 3 3"},
                    # notifications: PagerDuty's key was revoked (every attempt fails), Slack works
                    {"series": f'{failed}{{{sel},channel="pagerduty",reason="auth_error"}}', "values": "0+1x20"},
                    {"series": f'{sent}{{{sel},channel="pagerduty"}}', "values": "0x20"},
                    {"series": f'{failed}{{{sel},channel="slack",reason="rate_limited"}}', "values": "0+1x20"},
                    {"series": f'{sent}{{{sel},channel="slack"}}', "values": "0+1x20"},
                    {"series": f"receiver_outbox_oldest_pending_age_seconds{{{sel}}}", "values": "0 0 600+60x20"},
                    {"series": f"receiver_notifier_restarts_total{{{sel}}}", "values": "0 0 0 1 2 3"},
                    {"series": f"receiver_escalation_restarts_total{{{sel}}}", "values": "0 0 1 2 3 3"},
                    {
                        "series": f'receiver_escalation_nobody_on_call_total{{{sel},policy="default"}}',
                        "values": "0 0 1 1 1 1",
                    },
                    # email: one destination refused for good (a mailbox that does not exist), one interrupted
                    {"series": f'{failed}{{{sel},channel="email",reason="client_error"}}', "values": "0 0 1x10"},
                    {"series": f'{sent}{{{sel},channel="email"}}', "values": "0+1x12"},
                    {"series": f'{interrupted}{{{sel},channel="email"}}', "values": "0 1x10"},
                    # on call: "primary" gets a gap of a day from minute 3 (a daily check found it); "secondary" none
                    {"series": f'{gap}{{{sel},schedule="primary"}}', "values": "0 0 0 86400x10"},
                    {"series": f'{gap}{{{sel},schedule="secondary"}}', "values": "0x13"},
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "ReceiverDown", "exp_alerts": []},
                    {
                        "eval_time": "8m",
                        "alertname": "ReceiverDown",
                        "exp_alerts": [expect("ReceiverDown", severity="critical", **instance)],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "ReceiverPlaybookCircuitOpen",
                        "exp_alerts": [
                            expect("ReceiverPlaybookCircuitOpen", severity="warning", playbook="kube-pod-crash-looping")
                        ],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "ReceiverWebhookRejected",
                        "exp_alerts": [expect("ReceiverWebhookRejected", severity="warning")],
                    },
                    {"eval_time": "8m", "alertname": "ReceiverProcessingStalled", "exp_alerts": []},  # 420s: pending
                    {
                        "eval_time": "10m",
                        "alertname": "ReceiverProcessingStalled",
                        "exp_alerts": [expect("ReceiverProcessingStalled", severity="critical", **instance)],
                    },
                    {"eval_time": "2m", "alertname": "ReceiverWatchdogMissing", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "ReceiverWatchdogMissing",
                        "exp_alerts": [expect("ReceiverWatchdogMissing", severity="critical", **instance)],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "ReceiverDeadLetters",
                        "exp_alerts": [expect("ReceiverDeadLetters", severity="warning", **instance)],
                    },
                    {"eval_time": "0m", "alertname": "ReceiverEvidenceFailing", "exp_alerts": []},
                    {
                        "eval_time": "5m",
                        "alertname": "ReceiverEvidenceFailing",
                        "exp_alerts": [expect("ReceiverEvidenceFailing", severity="warning")],
                    },
                    {
                        "eval_time": "4m",
                        "alertname": "ReceiverEvidenceWorkerRestarting",
                        "exp_alerts": [expect("ReceiverEvidenceWorkerRestarting", severity="warning", **instance)],
                    },
                    {"eval_time": "4m", "alertname": "ReceiverNotificationsFailing", "exp_alerts": []},  # pending
                    {
                        "eval_time": "10m",
                        "alertname": "ReceiverNotificationsFailing",
                        "exp_alerts": [
                            expect("ReceiverNotificationsFailing", severity="critical", channel="pagerduty")
                        ],
                    },
                    {"eval_time": "6m", "alertname": "ReceiverOutboxStuck", "exp_alerts": []},  # 840s
                    {"eval_time": "12m", "alertname": "ReceiverOutboxStuck", "exp_alerts": []},  # over 900s: pending
                    {
                        "eval_time": "14m",
                        "alertname": "ReceiverOutboxStuck",
                        "exp_alerts": [expect("ReceiverOutboxStuck", severity="warning", **instance)],
                    },
                    {"eval_time": "0m", "alertname": "ReceiverNotificationsRefused", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "ReceiverNotificationsRefused",
                        "exp_alerts": [
                            expect("ReceiverNotificationsRefused", severity="critical", channel="pagerduty"),
                            expect("ReceiverNotificationsRefused", severity="critical", channel="email"),
                        ],
                    },
                    {
                        "eval_time": "2m",
                        "alertname": "ReceiverNotificationsInterrupted",
                        "exp_alerts": [expect("ReceiverNotificationsInterrupted", severity="warning", channel="email")],
                    },
                    {"eval_time": "2m", "alertname": "ReceiverOnCallCoverageGap", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "ReceiverOnCallCoverageGap",
                        "exp_alerts": [expect("ReceiverOnCallCoverageGap", severity="warning", schedule="primary")],
                    },
                    {"eval_time": "1m", "alertname": "ReceiverEscalationRestarting", "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": "ReceiverEscalationRestarting",
                        "exp_alerts": [expect("ReceiverEscalationRestarting", severity="critical", **instance)],
                    },
                    {"eval_time": "1m", "alertname": "ReceiverNobodyOnCall", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "ReceiverNobodyOnCall",
                        "exp_alerts": [expect("ReceiverNobodyOnCall", severity="critical", policy="default")],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "ReceiverNotifierRestarting",
                        "exp_alerts": [expect("ReceiverNotifierRestarting", severity="warning", **instance)],
                    },
                ],
            }
        ],
    }


def test_the_alertmanager_config_of_notes_and_docs_passes_amtool(tmp_path: Path) -> None:
    snippet = alertmanager_snippet()
    amtool = require_binary("amtool")
    for name, text in [("notes.yml", snippet), ("docs.yml", (ROOT / "docs" / "alertmanager.yml").read_text())]:
        file = tmp_path / name
        file.write_text(text)
        checked = subprocess.run([amtool, "check-config", str(file)], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, name + checked.stdout + checked.stderr
    assert f"url: http://{RELEASE}-receiver.{NAMESPACE}.svc:9095/api/v1/alerts" in snippet
    assert "credentials_file: /etc/alertmanager/secrets/rx-receiver-auth/webhook-token" in snippet
    docs = yaml.safe_load((ROOT / "docs" / "alertmanager.yml").read_text())
    assert yaml.safe_load(alertmanager_snippet("receiver")) == docs  # what a release named "receiver" prints
    routes = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={tmp_path / 'notes.yml'}", "alertname=Watchdog"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert routes.stdout.split()[0].split(",") == ["incident-receiver", "incident-receiver"], routes.stdout
    [watchdog] = [r for r in docs["route"]["routes"] if r.get("matchers") == ['alertname = "Watchdog"']]
    repeats = parse_duration(watchdog["repeat_interval"]) + parse_duration(watchdog["group_interval"])
    assert repeats < WatchdogSettings().missing_after  # the dead man's switch only fires when the pipeline is down


def _deployed_playbooks(docs: list[dict[str, Any]], tmp_path: Path) -> list[Any]:
    """The playbooks of the release's ConfigMap, loaded as the daemon loads them (none may be refused)."""
    directory = tmp_path / "playbooks"
    directory.mkdir(exist_ok=True)
    for config_map in (d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-playbooks")):
        for file, text in config_map["data"].items():
            (directory / file).write_text(text)
    loaded = load_dirs([directory])
    assert not loaded.problems, loaded.problems
    return list(loaded.playbooks)


def _granted(roles: list[dict[str, Any]]) -> set[Permission]:
    return {
        Permission(group, resource, verb)
        for role in roles
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
