"""Playbooks: loading with precise errors, the published schema, triggers, plans, and hostile labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from receiver import cli
from receiver.incidents.severity import Severity
from receiver.playbooks.model import Playbook, load_dirs, load_file, schema
from receiver.playbooks.plan import AlertFacts, NamespacePolicy, plan, plans, triggers
from receiver.playbooks.templating import TemplateError, render
from tests.corpus import CorpusAlert, alert, payload

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "playbooks"
EXAMPLES = ROOT / "examples" / "playbooks"
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
NAMESPACES = NamespacePolicy()


def facts(status: str = "firing", **labels: str) -> AlertFacts:
    return AlertFacts("0123456789abcdef", status, {"alertname": "KubePodCrashLooping", **labels}, {}, T0)


def real(corpus: CorpusAlert, status: str = "firing", without: str = "") -> AlertFacts:
    """A corpus alert as the planner sees it (``without`` one of its labels: an alert that lacks it)."""
    labels = {k: v for k, v in corpus.labels.items() if k != without}
    return AlertFacts("0123456789abcdef", status, labels, corpus.annotations, T0)


def shipped(name: str, directory: Path = SHIPPED) -> Playbook:
    found = load_file(directory / f"{name}.yaml")
    assert isinstance(found, Playbook), found
    return found


def example(name: str) -> Playbook:
    return shipped(name, EXAMPLES)


def test_the_shipped_playbooks_load_and_the_published_schema_is_current() -> None:
    loaded = load_dirs([SHIPPED])
    assert loaded.problems == ()
    assert {p.name for p in loaded.playbooks} == {
        "kube-pod-crash-looping",
        "kube-deployment-rollout-stuck",
        "kube-container-waiting",
        "kube-hpa-maxed-out",
        "kube-persistent-volume-filling-up",
        "kube-node-not-ready",
    }
    examples = load_dirs([EXAMPLES])
    assert examples.problems == ()
    assert {p.name for p in examples.playbooks} == {
        "crashloop",
        "high-error-rate",
        "database-pool-exhausted",
        "capacity-saturation",
        "container-memory-high",
    }
    published = json.loads((SHIPPED / "schema" / "playbook-v1.json").read_text())
    assert published == schema(), "regenerate: receiver playbooks schema > playbooks/schema/playbook-v1.json"


VALID = """
apiVersion: receiver/v1
kind: Playbook
metadata: {name: demo}
spec:
  trigger: {alertname: X}
  steps:
    - {name: one, action: delete_pod,
       target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.pod }}"}}
"""


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (("kind: Playbook", "kind: Playbok"), "kind", "Input should be 'Playbook'"),
        (("metadata: {name: demo}", "metadata: {name: Demo_1}"), "metadata.name", "should match pattern"),
        (("trigger: {alertname: X}", "trigger: {alertname: X, colour: red}"), "spec.trigger.colour", "Extra inputs"),
        (("trigger: {alertname: X}", "trigger: {labels: ['ns~prod']}"), "spec.trigger.labels[0]", "is not a matcher"),
        (("trigger: {alertname: X}", "trigger: {labels: ['ns=~\"(?!kube-).*\"']}"), "spec.trigger.labels[0]", "RE2"),
        (("action: delete_pod", "action: explode"), "spec.steps[0]", "does not match any of the expected tags"),
        (('name: "{{ alert.labels.pod }}"', 'name: "{{ alert.labels.pod "'), "spec.steps[0].target.name", "unexpected"),
        (("{name: one, action", "{name: one, when: 'alert.status ==', action"), "spec.steps[0].when", "unexpected"),
        (("steps:", "steps: []\n  x:"), "spec.x", "Extra inputs"),
    ],
)
def test_an_invalid_playbook_is_rejected_with_its_file_path_and_reason(
    tmp_path: Path, change: tuple[str, str], path: str, message: str
) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(VALID.replace(*change))
    problems = load_file(file)
    assert isinstance(problems, list)
    assert any(p.path == path and message in p.message and p.file == file for p in problems), problems


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{name: s, action: scale, target: {namespace: a, name: b}, replicas: 3, by: 1}", "exactly one of replicas"),
        ("{name: s, action: scale, target: {namespace: a, name: b}, by: 1, min: 5, max: 2}", "min (5) is above max"),
        ("{name: s, action: wait}", "Field required"),
        ("{name: s, action: set_env, target: {namespace: a, name: b}, env: {}}", "at least 1 item"),
    ],
)
def test_step_rules(tmp_path: Path, step: str, message: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(VALID.split("    - {name: one")[0] + f"    - {step}\n")
    problems = load_file(file)
    assert isinstance(problems, list) and any(message in p.message for p in problems), problems


def test_unreadable_files_and_duplicate_names_are_problems_others_still_load(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)  # the same name again
    (tmp_path / "c.yaml").write_text("{ not: yaml: at all")
    (tmp_path / "d.yml").write_text("- a list")
    (tmp_path / "notes.txt").write_text("ignored")
    loaded = load_dirs([tmp_path])
    assert [p.name for p in loaded.playbooks] == ["demo"]
    assert [(p.file.name, p.path) for p in loaded.problems] == [
        ("b.yaml", "metadata.name"),
        ("c.yaml", ""),
        ("d.yml", ""),
    ]
    assert "already the name of" in loaded.problems[0].message and "is not YAML" in loaded.problems[1].message


ERRORS = AlertFacts("f", "firing", {"alertname": "HighErrorRate", "namespace": "api", "deployment": "api"}, {}, T0)
"""The alert of your own that the high-error-rate example expects (kube-prometheus raises no HighErrorRate)."""


@pytest.mark.parametrize(
    ("found", "alert_facts", "severity", "expected"),
    [
        (shipped("kube-pod-crash-looping"), real(alert("KubePodCrashLooping")), None, True),
        (shipped("kube-pod-crash-looping"), real(alert("KubePodCrashLooping"), "resolved"), None, False),  # firing
        (shipped("kube-hpa-maxed-out"), real(alert("KubePodCrashLooping")), None, False),  # another alert name
        (shipped("kube-container-waiting"), real(alert("KubeContainerWaiting", reason="ErrImagePull")), None, True),
        (
            shipped("kube-container-waiting"),  # its label matcher: waiting for another reason than the image
            real(alert("KubeContainerWaiting", reason="CreateContainerConfigError")),
            None,
            False,
        ),
        (example("high-error-rate"), ERRORS, Severity.SEV2, True),  # severity: SEV2 or worse
        (example("high-error-rate"), ERRORS, Severity.SEV1, True),
        (example("high-error-rate"), ERRORS, Severity.SEV3, False),
        (example("high-error-rate"), ERRORS, None, False),  # no incident, no severity: not worse than SEV2
    ],
)
def test_triggers(found: Playbook, alert_facts: AlertFacts, severity: Severity | None, expected: bool) -> None:
    assert triggers(found, alert_facts, severity) is expected


def test_label_matchers_in_triggers(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(VALID.replace("trigger: {alertname: X}", "trigger: {labels: ['namespace=~\"prod-.*\"']}"))
    found = load_file(file)
    assert isinstance(found, Playbook)
    assert triggers(found, facts(namespace="prod-eu"))
    assert not triggers(found, facts(namespace="staging"))


def test_a_plan_renders_every_step() -> None:
    crash = alert("KubePodCrashLooping", namespace="shop", pod="cart-7d9f-x")
    [found] = plans([shipped("kube-pod-crash-looping")], real(crash), NAMESPACES)
    assert found.refused is None
    assert [(s.name, s.action, s.when) for s in found.steps] == [
        ("delete_pod", "delete_pod", None),
        ("watch", "wait_for_ready", None),
        ("rollback", "rollout_undo", None),
    ]
    assert dict(found.steps[0].inputs) == {
        "kind": "Pod",
        "namespace": "shop",
        "name": "cart-7d9f-x",
        "timeout_seconds": 60.0,
    }
    of_the_pod = {"namespace": "shop", "owner_of": {"kind": "Pod", "name": "cart-7d9f-x"}}
    assert dict(found.steps[1].inputs) == of_the_pod | {
        "kinds": ["Deployment", "StatefulSet", "DaemonSet"],
        "stable_seconds": 120.0,
        "within_seconds": 360.0,
        "timeout_seconds": 370.0,  # its within, plus 10s: the watch can finish
    }
    assert dict(found.steps[2].inputs) == of_the_pod | {
        "kinds": ["Deployment"],
        "max_age_seconds": 1800.0,
        "timeout_seconds": 60.0,
    }


CRASH, WAITING, STUCK = "kube-pod-crash-looping", "kube-container-waiting", "kube-deployment-rollout-stuck"
HPA, PVC, NODE = "kube-hpa-maxed-out", "kube-persistent-volume-filling-up", "kube-node-not-ready"
ALERTS = {
    CRASH: ("KubePodCrashLooping", None),
    WAITING: ("KubeContainerWaiting", None),
    STUCK: ("KubeDeploymentRolloutStuck", None),
    HPA: ("KubeHpaMaxedOut", None),
    PVC: ("KubePersistentVolumeFillingUp", "warning"),
    NODE: ("KubeNodeNotReady", None),
}
"""Each shipped playbook's corpus alert (name, variant)."""


@pytest.mark.parametrize(
    ("name", "labels", "refusal"),
    [
        (CRASH, {"pod": "x; rm -rf /"}, "step 'delete_pod': name 'x; rm -rf /' is not a valid DNS-1123 subdomain"),
        (CRASH, {"pod": "../../etc"}, "is not a valid DNS-1123 subdomain"),
        (CRASH, {"pod": "Cart"}, "is not a valid DNS-1123 subdomain"),
        (CRASH, {"pod": "a" * 254}, "is not a valid DNS-1123 subdomain"),
        (CRASH, {"pod": "{{ 7 * 7 }}"}, "name '{{ 7 * 7 }}' is not"),  # a label is a value: never rendered again
        (CRASH, {"namespace": "kube-system"}, "namespace 'kube-system' is denied"),
        (CRASH, {"namespace": "shop\nother"}, "is not a valid DNS-1123 label"),
        (WAITING, {"pod": "web-1 && curl evil.example"}, "step 'rollback': name 'web-1 && curl evil.example' is not"),
        (WAITING, {"namespace": "kube-system"}, "step 'rollback': namespace 'kube-system' is denied"),
        (STUCK, {"deployment": "$(reboot)"}, "step 'rollback': name '$(reboot)' is not a valid DNS-1123 subdomain"),
        (HPA, {"horizontalpodautoscaler": "web`id`"}, "step 'raise_max': name 'web`id`' is not a valid DNS-1123"),
        (PVC, {"persistentvolumeclaim": "../data"}, "step 'expand': name '../data' is not a valid DNS-1123"),
        (PVC, {"namespace": "Shop"}, "step 'expand': namespace 'Shop' is not a valid DNS-1123 label"),
        (NODE, {"node": "node-1\nnode-2"}, "step 'cordon': node name 'node-1\\nnode-2' is not"),  # quoted, one line
        (NODE, {"node": "{{ alert }}"}, "step 'cordon': node name '{{ alert }}' is not"),
    ],
)
def test_hostile_labels_are_refused_before_any_call(name: str, labels: dict[str, str], refusal: str) -> None:
    """A hostile value in a real alert's subject label refuses the whole run at planning: no step is called."""
    alertname, variant = ALERTS[name]
    found = plan(shipped(name), real(alert(alertname, variant, **labels)), NAMESPACES)
    assert found.refused is not None and refusal in found.refused, found.refused


@pytest.mark.parametrize(
    ("name", "label"),
    [
        (CRASH, "pod"),
        (CRASH, "namespace"),
        (WAITING, "pod"),
        (STUCK, "deployment"),
        (HPA, "horizontalpodautoscaler"),
        (PVC, "persistentvolumeclaim"),
        (NODE, "node"),
    ],
)
def test_a_missing_label_is_refused_before_any_call(name: str, label: str) -> None:
    alertname, variant = ALERTS[name]
    found = plan(shipped(name), real(alert(alertname, variant), without=label), NAMESPACES)
    assert found.refused is not None
    assert f"has no attribute '{label}' (a label or value the alert does not have)" in found.refused


def test_the_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(VALID.replace('"{{ alert.labels.pod }}"', '"{{ alert.__class__.__mro__ }}"'))
    found = load_file(file)
    assert isinstance(found, Playbook)
    result = plan(found, facts(namespace="shop", pod="p"), NAMESPACES)
    assert result.refused is not None and "refused by the sandbox" in result.refused


@pytest.mark.parametrize("template", ["{{ range(3) | join('-') }}", "{{ lipsum(1) }}", "{{ cycler('a').next() }}"])
def test_templates_see_only_their_values_not_jinjas_globals(template: str) -> None:
    """A template has alert, incident and steps: none of Jinja's global helpers to call."""
    with pytest.raises(TemplateError, match="is undefined"):
        render(template, {"alert": facts().values(), "incident": {}, "steps": {}})
    assert (
        render(
            "{{ alert.labels.alertname | lower }}-{{ incident.id }}",
            {"alert": facts().values(), "incident": {"id": "i"}},
        )
        == "kubepodcrashlooping-i"
    )


def test_allowed_namespaces() -> None:
    only_shop = NamespacePolicy(allow=("shop",))
    crash = shipped("kube-pod-crash-looping")
    assert plan(crash, real(alert("KubePodCrashLooping", namespace="shop")), only_shop).refused is None
    refused = plan(crash, real(alert("KubePodCrashLooping", namespace="billing")), only_shop).refused
    assert refused is not None and "namespace 'billing' is not allowed" in refused
    # A node is in no namespace: the node alert's `namespace` is kube-state-metrics' (monitoring), not the node's.
    node = real(alert("KubeNodeNotReady"))
    assert node.labels["namespace"] == "monitoring"
    assert plan(shipped("kube-node-not-ready"), node, only_shop).refused is None


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["playbooks", "validate", str(SHIPPED)]) == 0
    assert "6 playbooks ok, 0 problems" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text(VALID.replace("kind: Playbook", "kind: Nope"))
    assert cli.main(["playbooks", "validate", str(tmp_path)]) == 2
    assert f"{tmp_path / 'bad.yaml'}: kind: Input should be 'Playbook'" in capsys.readouterr().err


def test_cli_plan_prints_what_would_run_for_a_webhook_payload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pods = [alert("KubePodCrashLooping", namespace="prod", pod=f"api-7d9f-{x}") for x in "abc"]
    body = tmp_path / "crashlooping.json"
    body.write_text(json.dumps(payload(pods, starts_at=T0, group_labels={"namespace": "prod"})))
    assert cli.main(["playbooks", "plan", "--alert", str(body), "--dir", str(SHIPPED), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report) == 3 and all([p["playbook"] for p in r["plans"]] == ["kube-pod-crash-looping"] for r in report)
    steps = report[0]["plans"][0]["steps"]
    assert steps[0]["inputs"] == {"kind": "Pod", "namespace": "prod", "name": "api-7d9f-a", "timeout_seconds": 60.0}
    assert cli.main(["playbooks", "plan", "--alert", str(body), "--dir", str(SHIPPED)]) == 0
    assert "playbook kube-pod-crash-looping: allowed" in capsys.readouterr().out


def test_cli_plan_names_what_is_wrong_with_the_payload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "4", "alerts": [{"status": "firing"}]}))
    assert cli.main(["playbooks", "plan", "--alert", str(bad), "--dir", str(SHIPPED)]) == 2
    assert "alerts[0]" in capsys.readouterr().err


def test_cli_plan_shows_what_the_guardrails_would_say(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "node.json"
    body.write_text(json.dumps(payload([alert("KubeNodeNotReady")], starts_at=T0)))
    assert cli.main(["playbooks", "plan", "--alert", str(body), "--dir", str(SHIPPED)]) == 0
    assert "playbook kube-node-not-ready: allowed (needs approval)" in capsys.readouterr().out
    settings = tmp_path / "receiver.yml"
    settings.write_text("remediation: {guardrails: {dry_run: true, max_replicas: 1}}\n")
    argv = ["playbooks", "plan", "--alert", str(body), "--dir", str(SHIPPED), "--config", str(settings), "--json"]
    assert cli.main(argv) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert report["plans"][0]["guardrails"] == "allowed (dry-run, needs approval)"
    settings.write_text("remediation: {guardrails: {max_runs_per_hour: 0}}\n")
    assert cli.main(argv) == 2
    assert "remediation.guardrails.max_runs_per_hour" in capsys.readouterr().err


WAITING = """
apiVersion: receiver/v1
kind: Playbook
metadata: {name: waits}
spec:
  trigger: {alertname: X}
  steps:
    - {name: settle, action: wait, duration: 5m}
    - {name: short, action: wait, duration: 10s}
    - {name: resolve, action: wait_for_resolution, timeout: 10m}
"""


def test_a_waits_time_limit_follows_from_its_duration(tmp_path: Path) -> None:
    file = tmp_path / "waits.yaml"
    file.write_text(WAITING)
    found = load_file(file)
    assert isinstance(found, Playbook), found
    assert [s.timeout.total_seconds() for s in found.spec.steps] == [310.0, 60.0, 600.0]  # 5m + 10s; the default
    planned = plan(found, facts(), NAMESPACES)
    assert [s.inputs["timeout_seconds"] for s in planned.steps] == [310.0, 60.0, 600.0]


@pytest.mark.parametrize("timeout", ["1m", "5m"])
def test_a_wait_that_could_never_finish_is_a_validation_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    file = tmp_path / "waits.yaml"
    file.write_text(WAITING.replace("duration: 5m}", f"duration: 5m, timeout: {timeout}}}"))
    [problem] = load_file(file)  # type: ignore[misc]
    assert problem.path == "spec.steps[0]"
    assert problem.message.startswith("step 'settle': its timeout (") and "could never finish" in problem.message
    assert cli.main(["playbooks", "validate", str(tmp_path)]) == 2
    assert f"{file}: spec.steps[0]: step 'settle': its timeout" in capsys.readouterr().err


GUARDED = """
apiVersion: receiver/v1
kind: Playbook
metadata: {name: guarded}
spec:
  trigger: {alertname: KubePodCrashLooping}
  steps:
    - {name: delete_pod, action: delete_pod,
       target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.pod }}"}}
    - name: rollback
      when: alert.status == "firing"
      action: rollout_undo
      target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.deployment }}"}
"""


def test_cli_plan_shows_a_deferred_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "guarded.yaml").write_text(GUARDED)
    alert = {"status": "firing", "labels": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "web-1"}}
    payload = tmp_path / "crash.json"
    payload.write_text(json.dumps({"version": "4", "status": "firing", "alerts": [{**alert, "startsAt": str(T0)}]}))
    argv = ["playbooks", "plan", "--alert", str(payload), "--dir", str(tmp_path / "playbooks")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "playbook guarded: allowed" in out
    assert "2. rollback: rollout_undo deferred (rendered at run time if its condition holds): " in out
    assert cli.main([*argv, "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    [planned] = report["plans"]
    assert planned["refused"] is None
    rollback = planned["steps"][1]
    assert (rollback["inputs"], rollback["refused"]) == ({}, None) and "deployment" in rollback["deferred"]
