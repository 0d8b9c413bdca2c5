"""Settings: strict loading, key paths in errors, secrets from the environment."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from receiver import cli, config
from receiver.durations import parse_duration


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "receiver.yml"
    path.write_text(text)
    return path


def test_defaults_are_safe() -> None:
    settings = config.load(None, {})
    assert str(settings.listen) == "127.0.0.1:9095"
    assert settings.database_path == Path("data/receiver.db")
    assert settings.webhook.bearer_token is None and settings.webhook.basic_auth is None
    assert settings.store.synchronous == "full"


def test_example_config_is_valid() -> None:
    example = Path(__file__).parent.parent / "examples" / "receiver.yml"
    assert config.load(example, {}).store.max_batch == 512


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("bogus: 1", "bogus", "unknown setting"),
        ("store: {max_pending: '10'}", "store.max_pending", "valid integer"),
        ("store: {max_pending: 0}", "store.max_pending", "greater than or equal to 1"),
        ("store: {synchronous: off}", "store.synchronous", "'full' or 'normal'"),
        ("store: {nope: 1}", "store.nope", "unknown setting"),
        ("listen: 9095", "listen", "HOST:PORT"),
        ("listen: 'localhost:99999'", "listen", "out of range"),
        ("alerts: {expire_after: 5x}", "alerts.expire_after", "duration"),
        ("alerts: {expire_after: -5}", "alerts.expire_after", "positive"),
        ("alerts: {flap_threshold: true}", "alerts.flap_threshold", "valid integer"),
        ("webhook: {basic_auth: {password: x}}", "webhook.basic_auth.username", "missing"),
        ("webhook: {bearer_token: ''}", "webhook.bearer_token", "at least 1"),
        ("tls: {cert_file: /nonexistent, key_file: /nonexistent}", "tls.cert_file", "does not point to a file"),
        ("log_level: loud", "log_level", "'debug'"),
        ("webhook: [1]", "webhook", "valid dictionary"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, text: str, key: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(write(tmp_path, text), {})
    problems = dict(caught.value.problems)
    assert key in problems, caught.value.problems
    assert message in problems[key]


@pytest.mark.parametrize("text", ["[1, 2]", "a: [", "just a string"])
def test_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(write(tmp_path, text), {})
    assert caught.value.problems[0][0] == str(tmp_path / "receiver.yml")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "nope.yml", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("250ms", 0.25),
        (90, 90),
        (1.5, 1.5),
        ("2h", 7200),
        ("7d", 604800),
        ("1w1d12h", 734400),
    ],
)
def test_durations(text: Any, expected: float) -> None:
    assert parse_duration(text) == timedelta(seconds=expected)


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "webhook: {basic_auth: {username: am}}\napi: {}")
    env = {"RECEIVER_WEBHOOK_TOKEN": "t1", "RECEIVER_WEBHOOK_PASSWORD": "p1", "RECEIVER_API_TOKEN": "a1"}
    settings = config.load(path, env)
    assert settings.webhook.bearer_token is not None
    assert settings.webhook.bearer_token.get_secret_value() == "t1"
    assert settings.webhook.basic_auth is not None
    assert settings.webhook.basic_auth.password.get_secret_value() == "p1"
    assert settings.api.token is not None and settings.api.token.get_secret_value() == "a1"
    assert "t1" not in repr(settings)


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "webhook: {bearer_token: from-file}")
    settings = config.load(path, {"RECEIVER_WEBHOOK_TOKEN": "from-env"})
    assert settings.webhook.bearer_token is not None
    assert settings.webhook.bearer_token.get_secret_value() == "from-env"


@pytest.mark.parametrize(
    ("var", "key"),
    [
        ("RECEIVER_API_TOKEN", "api.token"),
        ("RECEIVER_WEBHOOK_TOKEN", "webhook.bearer_token"),
        ("RECEIVER_WEBHOOK_PASSWORD", "webhook.basic_auth.password"),
    ],
)
@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_an_empty_secret_in_the_environment_is_refused_naming_the_key_and_the_variable(
    tmp_path: Path, var: str, key: str, value: str
) -> None:
    path = write(tmp_path, "webhook: {basic_auth: {username: am}}")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, {var: value})
    problems = dict(caught.value.problems)
    assert key in problems, caught.value.problems
    assert var in problems[key]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("api: {token: ''}", "api.token"),
        ("api: {token: '  '}", "api.token"),
        ("webhook: {bearer_token: ' '}", "webhook.bearer_token"),
        ("webhook: {basic_auth: {username: '', password: p}}", "webhook.basic_auth.username"),
        ("webhook: {basic_auth: {username: ' ', password: p}}", "webhook.basic_auth.username"),
        ("webhook: {basic_auth: {username: am, password: ''}}", "webhook.basic_auth.password"),
        ('webhook: {basic_auth: {username: am, password: "\\t"}}', "webhook.basic_auth.password"),
    ],
)
def test_an_empty_credential_in_the_file_is_refused(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(write(tmp_path, text), {})
    assert key in dict(caught.value.problems), caught.value.problems


def test_config_check_reports_an_empty_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "store: {max_batch: 10}")
    monkeypatch.setenv("RECEIVER_API_TOKEN", "")
    assert cli.main(["config", "check", str(good)]) == cli.EXIT_CONFIG
    assert f"{good}: api.token:" in capsys.readouterr().err


def test_command_line_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: 127.0.0.1:1000\ndata_dir: /somewhere")
    settings = config.load(path, {}, {"listen": "[::1]:2000", "data_dir": str(tmp_path)})
    assert (settings.listen.host, settings.listen.port) == ("::1", 2000)
    assert settings.database_path == tmp_path / "receiver.db"


def test_config_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "store: {max_batch: 10}")
    assert cli.main(["config", "check", str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"{good}: ok"
    bad = write(tmp_path, "store: {max_batch: ten, extra: 1}")
    assert cli.main(["config", "check", str(bad)]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{bad}: store.max_batch: Input should be a valid integer" in err
    assert f"{bad}: store.extra: unknown setting" in err


def test_config_check_loads_tls_material(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    (tmp_path / "key.pem").write_text("not a key")
    path = write(tmp_path, f"tls: {{cert_file: {tmp_path}/cert.pem, key_file: {tmp_path}/key.pem}}")
    assert cli.main(["config", "check", str(path)]) == cli.EXIT_CONFIG
    assert "cannot load certificates" in capsys.readouterr().err


def test_settings_round_trip_through_json_for_the_engine_process() -> None:
    settings = config.load(None, {}, {"store": {"busy_timeout": "250ms"}, "alerts": {"expire_after": "1h30m"}})
    sent = settings.model_dump(mode="json", include={"data_dir", "log_level", "store", "alerts", "engine"})
    received = config.Settings.model_validate_json(json.dumps(sent))
    assert (received.store, received.alerts, received.engine) == (settings.store, settings.alerts, settings.engine)
    assert received.database_path == settings.database_path


INCIDENTS = {
    "correlation": {
        "rules": [{"name": "svc", "labels": ["namespace", "service"]}],
        "window": "10m",
        "cascade": {"alerts": 8, "services": 2, "severity": "SEV2"},
    },
    "suppression": [
        {
            "name": "database down",
            "root": ['alertname="DatabaseDown"'],
            "symptoms": ['alertname=~"HighLatency|HighErrorRate"'],
            "equal": ["namespace"],
        }
    ],
    "severity": {
        "rules": [
            {
                "name": "5xx above 50%",
                "severity": "SEV1",
                "labels": ['alertname="HighErrorRate"'],
                "threshold": {"name": "value", "op": ">", "value": 50},
            },
            {
                "name": "p95 above 3x baseline",
                "severity": "SEV2",
                "annotations": ['summary=~".*latency.*"'],
                "threshold": {"name": "value", "op": ">", "value": 3, "times": "baseline"},
            },
        ],
        "tiers": {"staging": 1, "canary": 1},
    },
}


def test_incident_settings_become_the_policies_of_the_decisions() -> None:
    from receiver.incidents.severity import Severity, Threshold, classify

    incidents = config.load(None, {}, {"incidents": INCIDENTS}).incidents
    policy = incidents.policy().correlation
    assert [(r.name, r.labels) for r in policy.rules] == [("svc", ("namespace", "service"))]
    assert (policy.window, policy.cascade_alerts, policy.cascade_services) == (timedelta(minutes=10), 8, 2)
    rules = incidents.rules()
    assert [r.name for r in rules] == ["5xx above 50%", "p95 above 3x baseline"]
    assert rules[1].threshold == Threshold("value", ">", 3.0, "baseline")
    assert classify({"alertname": "HighErrorRate"}, {"value": "70"}, rules).severity is Severity.SEV1
    modifiers = incidents.modifiers()
    assert (modifiers.tiers, modifiers.cascade_severity) == ({"staging": 1, "canary": 1}, Severity.SEV2)
    [dependency] = incidents.dependencies()
    assert dependency.root[0].matches({"alertname": "DatabaseDown"}) and dependency.equal == ("namespace",)


def test_default_incident_settings_correlate_node_alerts_by_node_then_by_namespace_then_cluster() -> None:
    incidents = config.Settings().incidents
    rules = incidents.policy().correlation.rules
    assert [(r.labels, r.subject) for r in rules] == [(("node",), "node"), (("namespace",), None), (("cluster",), None)]
    assert incidents.rules() == () and incidents.dependencies() == ()


def test_default_settings_ignore_the_always_firing_alerts_and_watch_the_watchdog() -> None:
    settings = config.Settings()
    policy = settings.incidents.policy()
    assert policy.ignores({"alertname": "Watchdog", "severity": "none"})
    assert policy.ignores({"alertname": "InfoInhibitor", "severity": "none"})
    assert policy.ignores({"alertname": "Anything", "severity": "none"})
    assert not policy.ignores({"alertname": "KubePodCrashLooping", "severity": "warning"})
    assert policy.watchdog.matchers[0].matches({"alertname": "Watchdog"})
    assert (policy.watchdog.enabled, policy.watchdog.missing_after) == (True, timedelta(minutes=10))
    # kube-prometheus-stack repeats an unchanged group every 12h after a group_interval of 5m
    assert settings.alerts.expire_after > timedelta(hours=12, minutes=5)


def test_subject_ignore_and_watchdog_settings_become_the_policy() -> None:
    raw = {
        "subject": {"labels": ["deployment", "pod"], "exporters": ["my-exporter|.+-metrics"], "cluster_scoped": []},
        "ignore": ['alertname="Heartbeat"', ['alertname="CPUThrottlingHigh"', 'namespace="batch"']],
        "watchdog": {"matchers": ['alertname="DeadMansSwitch"'], "missing_after": "3m", "severity": "SEV1"},
    }
    policy = config.load(None, {}, {"incidents": raw}).incidents.policy()
    subject = policy.correlation.subject
    assert subject.labels == ("deployment", "pod")
    assert [p.fullmatch("my-exporter") for p in subject.exporters] == [True]
    assert policy.ignores({"alertname": "Heartbeat"})
    assert policy.ignores({"alertname": "CPUThrottlingHigh", "namespace": "batch"})
    assert not policy.ignores({"alertname": "CPUThrottlingHigh", "namespace": "shop"})
    assert not policy.ignores({"alertname": "Watchdog"})  # the list replaces the default one
    assert policy.watchdog.matchers[0].matches({"alertname": "DeadMansSwitch"})
    assert (policy.watchdog.missing_after, str(policy.watchdog.severity)) == (timedelta(minutes=3), "SEV1")


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"subject": {"exporters": ["(?=a)"]}}, "incidents.subject.exporters.0", "RE2"),
        ({"ignore": ['alertname="unclosed']}, "incidents.ignore.0", "is not a matcher"),
        ({"ignore": [[]]}, "incidents.ignore.0", "at least 1"),
        ({"watchdog": {"missing_after": "soon"}}, "incidents.watchdog.missing_after", "not a duration"),
        ({"watchdog": {"matchers": []}}, "incidents.watchdog.matchers", "at least 1"),
        ({"correlation": {"rules": [{"name": "n", "labels": ["node"], "subject": ""}]}}, "incidents.correlation", ""),
    ],
)
def test_bad_subject_ignore_and_watchdog_settings_name_the_key(raw: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(None, {}, {"incidents": raw})
    problems = dict(caught.value.problems)
    assert any(k.startswith(key) and message in m for k, m in problems.items()), problems


@pytest.mark.parametrize(
    ("where", "bad", "key", "message"),
    [
        (("suppression", 0, "root", 0), 'alertname="unclosed', "incidents.suppression.0.root.0", "is not a matcher"),
        (("severity", "rules", 0, "labels", 0), 'x=~"("', "incidents.severity.rules.0.labels.0", "regular expression"),
        (("suppression", 0, "symptoms", 0), 'x=~"(?=a)a"', "incidents.suppression.0.symptoms.0", "RE2 syntax"),
        (("severity", "rules", 1, "annotations", 0), 'x=~"(a)\\\\1"', "incidents.severity.rules.1.annotations.0", "RE"),
        (("severity", "rules", 0, "severity"), "SEV5", "incidents.severity.rules.0.severity", "'SEV1'"),
        (("severity", "rules", 0, "threshold", "op"), "=>", "incidents.severity.rules.0.threshold.op", "'>'"),
        (("correlation", "rules", 0, "labels"), [], "incidents.correlation.rules.0.labels", "at least 1"),
        (("correlation", "window"), "soon", "incidents.correlation.window", "not a duration"),
    ],
)
def test_bad_incident_settings_name_the_key(where: tuple[Any, ...], bad: Any, key: str, message: str) -> None:
    raw = json.loads(json.dumps(INCIDENTS))
    node = raw
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = bad
    with pytest.raises(config.ConfigError) as caught:
        config.load(None, {}, {"incidents": raw})
    problems = dict(caught.value.problems)
    assert key in problems, problems
    assert message in problems[key]


def test_incident_settings_round_trip_through_json_for_the_engine_process() -> None:
    settings = config.load(None, {}, {"incidents": INCIDENTS})
    sent = settings.model_dump(mode="json", include={"incidents"})
    assert config.Settings.model_validate_json(json.dumps(sent)).incidents == settings.incidents


PAGER_KEY = "R0123456789ABCDEF0123456789ABCDE"
NOTIFY = """
notify:
  channels:
    pagerduty: {type: pagerduty, routing_key: env:PD_KEY}
    email: {type: email, host: 127.0.0.1, security: none, sender: rx@example.com, to: [oncall@example.com]}
"""


def test_channel_secrets_come_from_the_environment_and_never_show(tmp_path: Path) -> None:
    file = tmp_path / "c.yml"
    file.write_text(NOTIFY)
    settings = config.load(file, {"PD_KEY": PAGER_KEY})
    assert PAGER_KEY not in repr(settings.notify.channels["pagerduty"])
    assert [str(t) for r in settings.notify.route_list() for t in r.targets] == ["pagerduty", "pagerduty", "email"]
    with pytest.raises(config.ConfigError) as missing:
        config.load(file, {})
    problem = ("notify.channels.pagerduty.routing_key", "environment variable PD_KEY is not set")
    assert missing.value.problems == [problem]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  routes: [{channels: [slack]}]", "routes[0] names channel 'slack', not in notify.channels"),
        ("  routes: [{matchers: ['severity=~\"(\"'], channels: [email]}]", "invalid regular expression"),
        ("  templates: {internal: {declared: '{{ incident.nope }}'}}", "the internal declared template, line 1"),
        ("  cadence: {SEV5: 1h}", "notify.cadence.SEV5"),
    ],
)
def test_bad_notification_settings_are_refused_naming_what_is_wrong(tmp_path: Path, extra: str, message: str) -> None:
    file = tmp_path / "c.yml"
    file.write_text(NOTIFY + extra + "\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(file, {"PD_KEY": PAGER_KEY})
    assert message in str(err.value.problems), err.value.problems


def test_a_channel_name_must_be_a_metric_label(tmp_path: Path) -> None:
    file = tmp_path / "c.yml"
    file.write_text(NOTIFY.replace("    email:", "    Team Mail:"))
    with pytest.raises(config.ConfigError) as err:
        config.load(file, {"PD_KEY": PAGER_KEY})
    assert "channel name 'Team Mail'" in str(err.value.problems)


def test_an_email_timeout_must_end_before_the_senders_attempt_does(tmp_path: Path) -> None:
    file = tmp_path / "c.yml"
    file.write_text(NOTIFY.replace("to: [oncall@example.com]}", "to: [oncall@example.com], timeout: 30}"))
    with pytest.raises(config.ConfigError) as err:
        config.load(file, {"PD_KEY": PAGER_KEY})
    assert "channel 'email': its timeout (30s) must be shorter than notify.retry.send_timeout (30s)" in str(
        err.value.problems
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("pagerduty:OTHERKEY", "routes[0]: pagerduty:OTHERKEY: "),
        ("email:not-an-address", "routes[0]: email:not-an-address: "),
    ],
)
def test_a_route_destination_the_channel_cannot_send_to_is_refused_at_load(
    tmp_path: Path, target: str, message: str
) -> None:
    file = tmp_path / "c.yml"
    file.write_text(NOTIFY + f"  routes: [{{channels: ['{target}']}}]\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(file, {"PD_KEY": PAGER_KEY})
    assert message in str(err.value.problems), err.value.problems
    file.write_text(NOTIFY + "  routes: [{channels: ['email:dba@example.com']}]\n")
    assert config.load(file, {"PD_KEY": PAGER_KEY}).notify.route_list()[0].targets[0].destination == "dba@example.com"
