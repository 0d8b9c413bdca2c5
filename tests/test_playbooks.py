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
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "playbooks"
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
NAMESPACES = NamespacePolicy()


def facts(status: str = "firing", **labels: str) -> AlertFacts:
    return AlertFacts("0123456789abcdef", status, {"alertname": "KubePodCrashLooping", **labels}, {}, T0)


def shipped(name: str) -> Playbook:
    found = load_file(SHIPPED / f"{name}.yaml")
    assert isinstance(found, Playbook), found
    return found


def test_the_shipped_playbooks_load_and_the_published_schema_is_current() -> None:
    loaded = load_dirs([SHIPPED])
    assert loaded.problems == ()
    assert {p.name for p in loaded.playbooks} == {
        "crashloop",
        "high-memory",
        "api-error-rate",
        "db-pool-exhausted",
        "capacity-saturation",
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


@pytest.mark.parametrize(
    ("name", "alert", "severity", "expected"),
    [
        ("crashloop", facts(namespace="shop", pod="p"), None, True),
        ("crashloop", facts("resolved", namespace="shop", pod="p"), None, False),  # firing by default
        ("high-memory", facts(namespace="shop"), None, False),  # another alert name
        ("api-error-rate", AlertFacts("f", "firing", {"alertname": "HighErrorRate"}, {}, T0), Severity.SEV2, True),
        ("api-error-rate", AlertFacts("f", "firing", {"alertname": "HighErrorRate"}, {}, T0), Severity.SEV1, True),
        ("api-error-rate", AlertFacts("f", "firing", {"alertname": "HighErrorRate"}, {}, T0), Severity.SEV3, False),
        ("api-error-rate", AlertFacts("f", "firing", {"alertname": "HighErrorRate"}, {}, T0), None, False),
    ],
)
def test_triggers(name: str, alert: AlertFacts, severity: Severity | None, expected: bool) -> None:
    assert triggers(shipped(name), alert, severity) is expected


def test_label_matchers_in_triggers(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(VALID.replace("trigger: {alertname: X}", "trigger: {labels: ['namespace=~\"prod-.*\"']}"))
    found = load_file(file)
    assert isinstance(found, Playbook)
    assert triggers(found, facts(namespace="prod-eu"))
    assert not triggers(found, facts(namespace="staging"))


def test_a_plan_renders_every_step() -> None:
    [found] = plans([shipped("crashloop")], facts(namespace="shop", pod="cart-7d9f-x", deployment="cart"), NAMESPACES)
    assert found.refused is None
    assert [(s.name, s.action, s.when) for s in found.steps] == [
        ("delete_pod", "delete_pod", None),
        ("settle", "wait", None),
        ("rollback", "rollout_undo", 'alert.status == "firing"'),
    ]
    assert dict(found.steps[0].inputs) == {
        "kind": "Pod",
        "namespace": "shop",
        "name": "cart-7d9f-x",
        "timeout_seconds": 60.0,
    }
    assert found.steps[2].inputs["max_age_seconds"] == 1800.0


@pytest.mark.parametrize(
    ("labels", "refusal"),
    [
        ({"pod": "x; rm -rf /"}, "name 'x; rm -rf /' is not a valid DNS-1123 subdomain"),
        ({"pod": "../../etc"}, "is not a valid DNS-1123 subdomain"),
        ({"pod": "Cart"}, "is not a valid DNS-1123 subdomain"),
        ({"pod": "a" * 254}, "is not a valid DNS-1123 subdomain"),
        ({"pod": "{{ 7 * 7 }}"}, "name '{{ 7 * 7 }}' is not"),  # a label is a value: never rendered again
        ({"pod": "p", "namespace": "kube-system"}, "namespace 'kube-system' is denied"),
        ({"pod": "p", "namespace": "shop\nother"}, "is not a valid DNS-1123 label"),
        ({"namespace": "shop"}, "has no attribute 'pod' (a label or value the alert does not have)"),
    ],
)
def test_hostile_or_missing_labels_are_refused_before_any_call(labels: dict[str, str], refusal: str) -> None:
    alert = facts(**{"namespace": "shop", **labels}, deployment="cart")
    found = plan(shipped("crashloop"), alert, NAMESPACES)
    assert found.refused is not None and refusal in found.refused


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
    assert plan(shipped("crashloop"), facts(namespace="shop", pod="p", deployment="d"), only_shop).refused is None
    refused = plan(shipped("crashloop"), facts(namespace="billing", pod="p", deployment="d"), only_shop).refused
    assert refused is not None and "namespace 'billing' is not allowed" in refused


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["playbooks", "validate", str(SHIPPED)]) == 0
    assert "5 playbooks ok, 0 problems" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text(VALID.replace("kind: Playbook", "kind: Nope"))
    assert cli.main(["playbooks", "validate", str(tmp_path)]) == 2
    assert f"{tmp_path / 'bad.yaml'}: kind: Input should be 'Playbook'" in capsys.readouterr().err


def test_cli_plan_prints_what_would_run_for_a_captured_payload(capsys: pytest.CaptureFixture[str]) -> None:
    payload = FIXTURES / "02-firing-crashlooping-3-pods.json"
    assert cli.main(["playbooks", "plan", "--alert", str(payload), "--dir", str(SHIPPED), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report) == 3 and all(len(r["plans"]) == 1 for r in report)
    steps = report[0]["plans"][0]["steps"]
    assert steps[0]["inputs"] == {"kind": "Pod", "namespace": "prod", "name": "api-7d9f-a", "timeout_seconds": 60.0}
    assert cli.main(["playbooks", "plan", "--alert", str(payload), "--dir", str(SHIPPED)]) == 0
    assert "playbook crashloop" in capsys.readouterr().out


def test_cli_plan_names_what_is_wrong_with_the_payload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "4", "alerts": [{"status": "firing"}]}))
    assert cli.main(["playbooks", "plan", "--alert", str(bad), "--dir", str(SHIPPED)]) == 2
    assert "alerts[0]" in capsys.readouterr().err


def test_cli_plan_shows_what_the_guardrails_would_say(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "DatabaseConnectionPoolExhausted", "namespace": "shop", "deployment": "orders"},
        "annotations": {},
        "startsAt": "2026-11-22T09:00:00Z",
    }
    payload = tmp_path / "pool.json"
    payload.write_text(json.dumps({"version": "4", "status": "firing", "alerts": [alert]}))
    assert cli.main(["playbooks", "plan", "--alert", str(payload), "--dir", str(SHIPPED)]) == 0
    assert "playbook db-pool-exhausted: allowed (needs approval)" in capsys.readouterr().out
    settings = tmp_path / "receiver.yml"
    settings.write_text("remediation: {guardrails: {dry_run: true, max_replicas: 1}}\n")
    argv = ["playbooks", "plan", "--alert", str(payload), "--dir", str(SHIPPED), "--config", str(settings), "--json"]
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
