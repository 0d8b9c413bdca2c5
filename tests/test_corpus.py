"""The corpus of real alerts (tests/corpus): proven by promtool, its API strict, its bodies Alertmanager's.

Every entry is proven with ``promtool test rules`` against the vendored kube-prometheus-stack rules: the
test file is generated from alerts.yaml, so an entry whose labels or annotations are not what the rule
yields fails here. The API refuses labels the real alert does not carry, and ``payload`` builds bodies
shaped like those a real Alertmanager 0.25 sent (tests/fixtures/alertmanager-0.25) that the daemon's
decoder reads.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from receiver.alerts.wire import decode, fingerprint
from tests.corpus import (
    ALERTMANAGER_CONFIG,
    CORPUS,
    WEBHOOK_URL_PLACEHOLDER,
    alert,
    alertmanager_config,
    payload,
    webhook_alert,
)
from tests.corpus.entries import document, render_annotations
from tests.corpus.promtool import scraped, unit_test_file
from tests.e2e.harness import require_binary

FIXTURES = Path(__file__).parent / "fixtures" / "alertmanager-0.25"
START = datetime(2026, 11, 22, 9, 22, 35, tzinfo=UTC)
REQUIRED = {
    "KubePodCrashLooping": None,
    "KubePodNotReady": None,
    "KubeContainerWaiting": None,
    "KubeDeploymentRolloutStuck": None,
    "KubeDeploymentReplicasMismatch": None,
    "KubeStatefulSetReplicasMismatch": None,
    "KubeDaemonSetRolloutStuck": None,
    "KubeJobFailed": None,
    "KubeHpaMaxedOut": None,
    "KubeHpaReplicasMismatch": None,
    "KubePersistentVolumeFillingUp": {"critical", "warning"},
    "KubePersistentVolumeErrors": None,
    "KubeNodeNotReady": None,
    "KubeNodeUnreachable": None,
    "KubeletTooManyPods": None,
    "CPUThrottlingHigh": None,
    "KubeCPUOvercommit": None,
    "NodeFilesystemSpaceFillingUp": {"critical", "warning"},
    "NodeFilesystemAlmostOutOfSpace": {"critical", "warning"},
    "TargetDown": None,
    "Watchdog": None,
    "InfoInhibitor": None,
    "AlertmanagerFailedToSendAlerts": None,
    "PrometheusRuleFailures": None,
}


def run_promtool(tmp_path: Path, tests: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool", "prometheus")
    file = tmp_path / "corpus-test.yml"
    file.write_text(yaml.safe_dump(tests, sort_keys=False, width=10_000))
    return subprocess.run([promtool, "test", "rules", str(file)], capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- the proof


def test_promtool_fires_every_entry_with_exactly_its_labels_and_annotations(tmp_path: Path) -> None:
    tests = unit_test_file()
    assert len(tests["tests"]) == len(CORPUS)
    done = run_promtool(tmp_path, tests)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("KubePodCrashLooping", {"deployment": "web"}),  # the label the seed's fixtures invented
        ("KubeNodeNotReady", {"namespace": "kube-system"}),  # node alerts carry the exporter's namespace
        ("CPUThrottlingHigh", {"service": "web"}),  # service names the scrape target, not the app
    ],
)
def test_promtool_refuses_an_entry_whose_labels_are_not_what_the_rule_yields(
    tmp_path: Path, name: str, change: dict[str, str]
) -> None:
    tests = unit_test_file()
    [group] = [t for t in tests["tests"] if t["name"] == name]
    group["alert_rule_test"][0]["exp_alerts"][0]["exp_labels"].update(change)
    tests["tests"] = [group]
    done = run_promtool(tmp_path, tests)
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


def test_promtool_refuses_an_annotation_rendered_differently(tmp_path: Path) -> None:
    tests = unit_test_file()
    [group] = [t for t in tests["tests"] if t["name"] == "KubePersistentVolumeFillingUp (critical)"]
    annotations = group["alert_rule_test"][0]["exp_alerts"][0]["exp_annotations"]
    annotations["description"] = annotations["description"].replace("shop  is", "shop is")
    tests["tests"] = [group]
    assert run_promtool(tmp_path, tests).returncode != 0


def test_the_corpus_holds_every_alert_the_issue_names_with_its_variants() -> None:
    for name, variants in REQUIRED.items():
        found = {e.variant for e in CORPUS if e.name == name}
        assert found == (variants or {None}), name


def test_every_entry_records_its_source_and_is_the_vendored_rule() -> None:
    chart = document()["chart"]
    for entry in CORPUS:
        assert entry.source.startswith(f"tests/corpus/rules/{entry.rule.file}, group {entry.rule.group}, ")
        assert entry.source.endswith(f"kube-prometheus-stack {chart['version']}")
        assert entry.labels["alertname"] == entry.name == entry.rule.alert
        assert entry.severity == entry.rule.labels["severity"]
        assert entry.expr and entry.for_
        header = (Path(__file__).parent / "corpus" / "rules" / entry.rule.file).read_text().splitlines()[:6]
        assert any(chart["commit"] in line and chart["version"] in line for line in header), entry.rule.file


def test_stored_annotations_are_the_rules_templates_rendered() -> None:
    for entry in CORPUS:
        assert render_annotations(entry.rule, entry.labels, entry.value) == entry.annotations, entry.name


def test_every_entry_carries_the_kept_external_label_and_never_the_dropped_one() -> None:
    doc = document()
    for entry in CORPUS:
        for key, value in doc["external_labels"].items():
            assert entry.labels[key] == value
        assert not set(doc["dropped_external_labels"]) & set(entry.labels)


def test_subject_labels_are_labels_the_alert_carries_and_never_the_exporters_identity() -> None:
    for entry in CORPUS:
        assert set(entry.subject) <= set(entry.labels), entry.name
        assert not {"alertname", "severity", "prometheus", "endpoint", "metrics_path"} & set(entry.subject)
        if entry.labels.get("job") == "kube-state-metrics":
            assert not {"job", "service"} & set(entry.subject), entry.name


def test_a_scrape_merges_target_labels_as_honor_labels_says() -> None:
    honoured = scraped({"target": "kube-state-metrics", "labels": {"namespace": "shop", "pod": "web-1"}})
    assert honoured["namespace"] == "shop" and honoured["pod"] == "web-1"
    assert honoured["container"] == "kube-state-metrics"  # the exporter's own, where the series has none
    renamed = scraped({"target": "node-exporter", "labels": {"namespace": "shop"}})
    assert renamed["namespace"] == "monitoring" and renamed["exported_namespace"] == "shop"


# --------------------------------------------------------------------------- the API


def test_alert_gives_the_labels_alertmanager_receives() -> None:
    a = alert("KubePodCrashLooping", namespace="shop", pod="web-7d4b9c6f5-x2x9z", container="web")
    assert a.name == "KubePodCrashLooping" and a.severity == "warning"
    assert set(a.labels) == {
        "alertname", "container", "endpoint", "instance", "job", "namespace", "pod", "prometheus",
        "reason", "service", "severity", "uid",
    }  # fmt: skip
    assert "deployment" not in a.labels
    assert a.labels["service"] == "kube-prometheus-stack-kube-state-metrics"
    assert "kubernetes-apps.yaml" in a.source and "88.5.3" in a.source


def test_alert_refuses_a_label_the_real_alert_does_not_carry() -> None:
    with pytest.raises(ValueError, match="does not carry a label 'deployment'"):
        alert("KubePodCrashLooping", deployment="web")
    with pytest.raises(ValueError, match="does not carry a label 'deployment'"):
        alert("KubeNodeNotReady", node="n1", deployment="web")
    with pytest.raises(ValueError, match="does not carry a label 'namespace'"):
        alert("KubeCPUOvercommit", namespace="shop")


def test_alert_refuses_to_re_value_the_exporters_identity_or_the_rule() -> None:
    for key in ("job", "service", "severity", "instance", "prometheus"):
        with pytest.raises(ValueError, match="not the alert's subject"):
            alert("KubeDeploymentRolloutStuck", **{key: "x"})
    with pytest.raises(ValueError, match="not the alert's subject"):
        alert("KubeNodeNotReady", pod="web-1")  # its pod label is kube-state-metrics' own pod
    with pytest.raises(ValueError, match="non-empty string"):
        alert("KubePodCrashLooping", pod="")


def test_alert_refuses_unknown_names_and_needs_a_variant_where_rules_share_a_name() -> None:
    with pytest.raises(ValueError, match="no corpus alert named 'HighErrorRate'"):
        alert("HighErrorRate")
    with pytest.raises(ValueError, match=r"variant= one of \['critical', 'warning'\]"):
        alert("KubePersistentVolumeFillingUp")
    with pytest.raises(ValueError, match="no variant 'info'"):
        alert("KubePersistentVolumeFillingUp", variant="info")


def test_variant_picks_the_rule() -> None:
    critical = alert("KubePersistentVolumeFillingUp", variant="critical")
    warning = alert("KubePersistentVolumeFillingUp", variant="warning")
    assert (critical.severity, warning.severity) == ("critical", "warning")
    assert critical.labels["severity"] == "critical" and warning.labels["severity"] == "warning"
    assert "is only 2% free" in critical.annotations["description"]
    assert "expected to fill up within four days" in warning.annotations["description"]


def test_re_valued_labels_are_rendered_into_the_annotations() -> None:
    a = alert("KubePersistentVolumeFillingUp", variant="critical", namespace="billing", persistentvolumeclaim="pg-0")
    assert a.annotations["description"] == "The PersistentVolume claimed by pg-0 in Namespace billing  is only 2% free."
    assert a.labels["namespace"] == "billing" and a.labels["persistentvolumeclaim"] == "pg-0"
    node = alert("KubeNodeNotReady", node="ip-10-0-2-7.ec2.internal")
    assert node.annotations["description"].startswith("ip-10-0-2-7.ec2.internal has been unready")
    assert node.labels["namespace"] == "monitoring"  # the exporter's, since nodes have none


def test_alerts_are_independent_copies() -> None:
    a = alert("KubeHpaMaxedOut")
    a.labels["horizontalpodautoscaler"] = "changed"
    assert alert("KubeHpaMaxedOut").labels["horizontalpodautoscaler"] == "web"


# --------------------------------------------------------------------------- payloads


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def test_a_payload_has_the_shape_of_a_real_alertmanager_0_25_body() -> None:
    real = fixture("02-firing-crashlooping-3-pods.json")
    pods = ["web-7d4b9c6f5-a", "web-7d4b9c6f5-b", "web-7d4b9c6f5-c"]
    body = payload([alert("KubePodCrashLooping", pod=p) for p in pods], starts_at=START)
    assert set(body) == set(real)
    assert {k: type(v) for k, v in body.items()} == {k: type(v) for k, v in real.items()}
    for ours, theirs in zip(body["alerts"], real["alerts"], strict=True):
        assert set(ours) == set(theirs)
    assert body["version"] == "4" and body["status"] == "firing" and body["truncatedAlerts"] == 0
    assert body["groupLabels"] == {"namespace": "shop"}
    assert body["groupKey"] == '{}:{namespace="shop"}'
    assert body["alerts"][0]["startsAt"] == real["alerts"][0]["startsAt"] == "2026-11-22T09:22:35Z"
    assert body["alerts"][0]["endsAt"] == real["alerts"][0]["endsAt"]
    assert "pod" not in body["commonLabels"] and body["commonLabels"]["reason"] == "CrashLoopBackOff"
    assert body["commonAnnotations"] == {
        "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
        "summary": "Pod is crash looping.",
    }


def test_the_decoder_reads_payloads_and_agrees_on_fingerprints() -> None:
    alerts = [alert("KubePodCrashLooping"), alert("KubeDeploymentRolloutStuck"), alert("KubePodNotReady")]
    body = payload(alerts, starts_at=START)
    notification = decode(json.dumps(body).encode())
    assert len(notification.alerts) == 3
    for decoded, sent in zip(notification.alerts, body["alerts"], strict=True):
        assert decoded.fingerprint == sent["fingerprint"] == fingerprint(sent["labels"])
        assert dict(decoded.labels) == sent["labels"]
        assert decoded.starts_at == START and decoded.ends_at is None
    assert notification.group_key == '{}:{namespace="shop"}'


def test_the_fingerprint_is_alertmanagers() -> None:
    real = fixture("02-firing-crashlooping-3-pods.json")
    for a in real["alerts"]:
        assert fingerprint(a["labels"]) == a["fingerprint"]


def test_alerts_are_ordered_as_alertmanagers_dispatcher_orders_them() -> None:
    # job first (kube-state-metrics < kubelet), then instance, then the label set; one without the key last.
    pvc = alert("KubePersistentVolumeFillingUp", variant="critical")
    crash_b = alert("KubePodCrashLooping", pod="web-b")
    crash_a = alert("KubePodCrashLooping", pod="web-a")
    not_ready = alert("KubePodNotReady")
    body = payload([pvc, crash_b, not_ready, crash_a], starts_at=START)
    got = [(a["labels"]["alertname"], a["labels"].get("pod")) for a in body["alerts"]]
    assert got == [
        ("KubePodCrashLooping", "web-a"),
        ("KubePodCrashLooping", "web-b"),
        ("KubePodNotReady", "web-7d4b9c6f5-x2x9z"),  # job kube-state-metrics, but no instance: after those with one
        ("KubePersistentVolumeFillingUp", None),  # job kubelet
    ]


def test_resolved_alerts_carry_their_end_and_the_group_its_status() -> None:
    a, b = alert("KubePodCrashLooping", pod="web-a"), alert("KubePodCrashLooping", pod="web-b")
    end = START + timedelta(minutes=7, microseconds=250_000)
    mixed = payload([a, b], starts_at=START, ends_at=end, resolved=[b])
    assert mixed["status"] == "firing"
    assert [x["status"] for x in mixed["alerts"]] == ["firing", "resolved"]
    assert mixed["alerts"][1]["endsAt"] == "2026-11-22T09:29:35.25Z"
    done = payload([a, b], "resolved", starts_at=START, ends_at=end)
    assert done["status"] == "resolved" and {x["status"] for x in done["alerts"]} == {"resolved"}
    decoded = decode(json.dumps(done).encode())
    assert all(x.ends_at == end for x in decoded.alerts)
    with pytest.raises(ValueError, match="need ends_at"):
        payload([a], "resolved", starts_at=START)


def test_groups_follow_the_default_route() -> None:
    watchdog = payload([alert("Watchdog")], starts_at=START)
    assert watchdog["groupKey"] == '{}/{alertname="Watchdog"}:{}' and watchdog["groupLabels"] == {}
    node = payload([alert("KubeNodeNotReady")], starts_at=START)
    assert node["groupLabels"] == {"namespace": "monitoring"}  # what grouping by namespace does to node alerts
    with pytest.raises(ValueError, match="different"):
        payload([alert("KubePodCrashLooping"), alert("KubeNodeNotReady")], starts_at=START)
    with pytest.raises(ValueError, match="route of its own"):
        payload([alert("Watchdog"), alert("KubeCPUOvercommit")], starts_at=START)
    given = payload([alert("KubePodCrashLooping")], starts_at=START, group_labels={"alertname": "KubePodCrashLooping"})
    assert given["groupKey"] == '{}:{alertname="KubePodCrashLooping"}'


def test_payload_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone"):
        payload([alert("Watchdog")], starts_at=datetime(2026, 11, 22, 9, 0))


# --------------------------------------------------------------------------- alertmanager.yml


def test_the_alertmanager_config_passes_amtool_and_routes_like_the_chart(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    file = tmp_path / "alertmanager.yml"
    file.write_text(alertmanager_config("http://127.0.0.1:9095/api/v1/alerts", bearer_token="t0ken"))
    checked = subprocess.run([amtool, "check-config", str(file)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for labels, receiver in ((["alertname=Watchdog"], "receiver"), (["alertname=KubePodCrashLooping"], "receiver")):
        routed = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={file}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert routed.stdout.strip() == receiver, routed.stdout + routed.stderr
    config = yaml.safe_load(file.read_text())
    route = config["route"]
    assert (route["group_by"], route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        ["namespace"],
        "30s",
        "5m",
        "12h",
    )
    assert route["routes"] == [{"receiver": "receiver", "matchers": ['alertname = "Watchdog"']}]
    assert len(config["inhibit_rules"]) == 4
    [hook] = config["receivers"][0]["webhook_configs"]
    assert hook["http_config"]["authorization"] == {"type": "Bearer", "credentials": "t0ken"}


def test_the_alertmanager_config_has_one_placeholder_for_the_webhook() -> None:
    assert ALERTMANAGER_CONFIG.count(WEBHOOK_URL_PLACEHOLDER) == 1
    assert WEBHOOK_URL_PLACEHOLDER not in alertmanager_config("http://127.0.0.1:1/api/v1/alerts")


def test_the_config_inhibits_warnings_under_a_critical_of_the_same_namespace_and_name() -> None:
    # The corpus' node filesystem critical fires with its warning twin; the chart's first inhibit rule mutes it.
    rule = yaml.safe_load(ALERTMANAGER_CONFIG)["inhibit_rules"][0]
    critical = alert("NodeFilesystemAlmostOutOfSpace", variant="critical").labels
    warning = alert("NodeFilesystemAlmostOutOfSpace", variant="warning").labels
    assert rule["source_matchers"] == ["severity = critical"]
    assert all(critical[k] == warning[k] for k in rule["equal"])


def test_one_webhook_alert_is_what_payload_carries() -> None:
    a = alert("KubeHpaMaxedOut")
    assert webhook_alert(a, starts_at=START) == payload([a], starts_at=START)["alerts"][0]
    end = START + timedelta(minutes=3)
    assert webhook_alert(a, "resolved", starts_at=START, ends_at=end)["endsAt"] == "2026-11-22T09:25:35Z"
    with pytest.raises(ValueError, match="need ends_at"):
        webhook_alert(a, "resolved", starts_at=START)
