"""Evidence's pure parts: the subject of an alert, the redactor, the bounds, the rollout line, the requests."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from receiver.evidence.content import Bounds, ago, bounded, event_views, log_view, rollout_line
from receiver.evidence.redact import MARK, redact
from receiver.evidence.requests import OPENED, requests_for
from receiver.evidence.subject import Subject, subject_of
from receiver.incidents.book import Book, IncidentPolicy
from receiver.incidents.subject import SubjectPolicy
from receiver.playbooks.plan import AlertFacts
from receiver.playbooks.runs import RunIntent
from tests.corpus import CORPUS, alert
from tests.evidence_cluster import ALERTS, KSM_POD, NODE, POD

JOB = alert("KubeJobFailed").labels["job_name"]

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SUBJECTS = SubjectPolicy()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (ALERTS["KubePodCrashLooping"], Subject(namespace="shop", pod=POD, container="web")),
        (ALERTS["KubeNodeNotReady"], Subject(node=NODE)),  # not the exporter's pod, not its namespace
        (ALERTS["KubePersistentVolumeFillingUp"], Subject(namespace="shop", claim="data-db-0")),
        (ALERTS["KubeHpaMaxedOut"], Subject(namespace="shop", hpa="web")),
        (ALERTS["KubeDeploymentRolloutStuck"], Subject(namespace="shop", workload=("Deployment", "web"))),
        (alert("KubeJobFailed", namespace="batch").labels, Subject(namespace="batch", workload=("Job", JOB))),
        ({"alertname": "TargetDown", "job": "web", "namespace": "shop"}, Subject(namespace="shop")),
    ],
)
def test_the_subject_of_kube_prometheus_alerts(labels: dict[str, str], expected: Subject) -> None:
    assert subject_of(labels, SUBJECTS) == expected


def test_the_exporters_own_pod_is_never_the_subject() -> None:
    subject = subject_of(ALERTS["KubeNodeNotReady"], SUBJECTS)
    assert subject.pod is None and KSM_POD not in subject.describe()
    assert subject.describe() == f"Node {NODE}"


def test_names_from_labels_are_checked_before_anything_is_read() -> None:
    labels = {**ALERTS["KubePodCrashLooping"], "pod": "../../secrets/x", "container": "Web App"}
    subject = subject_of(labels, SUBJECTS)
    assert subject.pod is None and subject.container is None
    assert len(subject.refused) == 1 and "'../../secrets/x' is not a valid DNS-1123" in subject.refused[0]
    assert not subject.empty  # refused is said, as a failure to capture
    bad_namespace = subject_of({**ALERTS["KubePodCrashLooping"], "namespace": "Shop;rm"}, SUBJECTS)
    assert bad_namespace.namespace is None and bad_namespace.pod is None


def test_an_alert_naming_no_object_has_an_empty_subject() -> None:
    assert subject_of({"alertname": "Watchdog", "severity": "none"}, SUBJECTS).empty


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("DB_PASSWORD=hunter2x connecting", "DB_PASSWORD=[REDACTED] connecting", "hunter2x"),
        ('{"password": "s3cr3t!", "user": "bob"}', '"user": "bob"', "s3cr3t!"),
        ("api_key: 'abc def'", "api_key: [REDACTED]", "abc def"),
        ("Authorization: Bearer abcdefghijkl.mnop", "Authorization: Bearer [REDACTED]", "abcdefghijkl"),
        ("dial postgres://app:pa55w0rd@db:5432/x", "postgres://app:[REDACTED]@db:5432/x", "pa55w0rd"),
        ("using key AKIAIOSFODNN7EXAMPLE now", "using key [REDACTED] now", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "AWS_SECRET_ACCESS_KEY=[REDACTED]", "wJalrXUtn"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "jwt [REDACTED]", "eyJzdWIiOiIxIn0"),
        ("GITHUB_TOKEN=ghp_0123456789abcdef&x=1", "GITHUB_TOKEN=[REDACTED]&x=1", "ghp_0123456789abcdef"),
    ],
)
def test_secrets_are_redacted(text: str, kept: str, gone: str) -> None:
    out = redact(text)
    assert kept in out and gone not in out


@pytest.mark.parametrize(
    "text",
    ["GET /healthz 200 in 3ms", "panic: missing config key PAYMENTS_URL", "token bucket refilled", "authors: 3"],
)
def test_ordinary_lines_are_left_alone(text: str) -> None:
    assert redact(text) == text


_NAMES = st.sampled_from(["DB_PASSWORD", "password", "API_KEY", "secret", "GITHUB_TOKEN", "x-auth-token", "passwd"])
_VALUES = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./+", min_size=8, max_size=40
)
_AROUND = st.text(alphabet=" abcdefghijklmnopqrstuvwxyz:", max_size=30)


@given(_AROUND, _NAMES, st.sampled_from(["=", ": ", "="]), _VALUES, _AROUND)
def test_a_secret_variables_value_never_survives(before: str, name: str, sep: str, value: str, after: str) -> None:
    assume(value not in before and value not in after)
    out = redact(f"{before} {name}{sep}{value} {after}")
    assert value not in out and MARK in out


@given(st.text(max_size=200))
def test_redacting_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


_URL_PART = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.+%!$", min_size=1, max_size=30
)


@given(_URL_PART, _URL_PART, st.sampled_from(["https", "postgres", "redis", "amqp"]))
def test_a_password_in_a_url_never_survives(user: str, password: str, scheme: str) -> None:
    url = f"{scheme}://{user}:{password}@host:1/db"
    assert f":{password}@" not in redact(f"connecting to {url}")


def test_a_log_keeps_its_last_lines_and_bytes_and_says_it_was_cut() -> None:
    text = "".join(f"line {i} DB_PASSWORD=pw{i}x\n" for i in range(1000))
    view = log_view(text, Bounds(log_lines=10, log_bytes=1 << 20))
    assert view["truncated"] and len(view["lines"]) == 10 and view["lines"][-1] == "line 999 DB_PASSWORD=[REDACTED]"
    small = log_view(text, Bounds(log_lines=1000, log_bytes=300))
    assert small["truncated"] and sum(len(line) + 1 for line in small["lines"]) <= 300
    assert small["lines"][-1].startswith("line 999 ") and all(line.startswith("line ") for line in small["lines"])
    assert log_view("a\nb\n", Bounds()) == {"lines": ["a", "b"], "truncated": False}


def test_the_whole_evidence_is_cut_to_its_size_with_a_marker() -> None:
    lines = [f"{i:06d} " + "x" * 200 for i in range(2000)]
    content = {"logs": {"container": "web", "current": {"lines": lines, "truncated": False}}, "events": []}
    bounds = Bounds(total_bytes=64 * 1024)
    cut = bounded(content, bounds)
    assert cut["truncated"] is True and len(json.dumps(cut)) <= bounds.total_bytes
    kept = cut["logs"]["current"]["lines"]
    assert kept and kept[-1] == lines[-1] and cut["logs"]["current"]["truncated"]
    assert bounded({"pod": {"name": "x"}}, bounds) == {"pod": {"name": "x"}}


def _rollout(revision: int, image: str, created: datetime) -> dict[str, object]:
    return {"revision": revision, "images": [image], "createdAt": created.strftime("%Y-%m-%dT%H:%M:%SZ")}


def test_the_rollout_line_says_what_changed_and_when() -> None:
    first_alert = T0
    found = [
        _rollout(2, "shop/web:1.4.3", T0 - timedelta(minutes=4)),
        _rollout(1, "shop/web:1.4.2", T0 - timedelta(days=3)),
    ]
    assert rollout_line(found, first_alert) == (
        "image shop/web:1.4.2 -> shop/web:1.4.3 rolled out 4 minutes before the first alert"
    )
    later = [_rollout(3, "b", T0 + timedelta(seconds=30)), _rollout(2, "a", T0)]
    assert rollout_line(later, first_alert) == "image a -> b rolled out 30 seconds after the first alert"
    assert rollout_line(found[1:], first_alert) == "revision 1 (shop/web:1.4.2) created 3 days before the first alert"
    assert rollout_line([], first_alert) is None


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(seconds=1), "1 second"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(minutes=119), "119 minutes"),
        (timedelta(hours=5), "5 hours"),
        (timedelta(days=3, hours=1), "3 days"),
    ],
)
def test_ago(span: timedelta, text: str) -> None:
    assert ago(span) == text


def test_events_are_those_of_the_objects_recent_once_each_and_the_latest() -> None:
    def e(name: str, kind: str, minutes: int, n: int = 0) -> dict[str, object]:
        at = (T0 - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "metadata": {"namespace": "shop", "name": f"{name}.{n}"},
            "involvedObject": {"kind": kind, "name": name},
            "reason": "BackOff",
            "message": "token=abcdefgh1234",
            "lastTimestamp": at,
        }

    events = [
        e("p", "Pod", 1, 1),
        e("p", "Pod", 1, 1),
        e("p", "Pod", 500, 2),
        e("q", "Pod", 1, 3),
        e("rs", "ReplicaSet", 2, 4),
    ]
    found = event_views(events, {("Pod", "p"), ("ReplicaSet", "rs")}, T0 - timedelta(hours=1), Bounds(events=5))
    assert [x["object"] for x in found] == ["ReplicaSet/rs", "Pod/p"]
    assert found[1]["message"] == "token=[REDACTED]"
    assert (
        len(event_views(events, {("Pod", "p"), ("ReplicaSet", "rs")}, T0 - timedelta(hours=1), Bounds(events=1))) == 1
    )


def _facts(name: str, starts: datetime = T0) -> AlertFacts:
    labels = ALERTS[name]
    return AlertFacts(f"fp-{name}", "firing", labels, {}, starts)


def test_an_opened_incident_asks_for_its_first_alerts_evidence_and_a_run_for_its_alerts() -> None:
    book = Book(IncidentPolicy())
    news = [_facts("KubePodCrashLooping"), _facts("KubeHpaMaxedOut"), _facts("KubePersistentVolumeFillingUp")]
    watchdog = AlertFacts("fp-watchdog", "firing", {"alertname": "Watchdog", "namespace": "shop"}, {}, T0)
    before = book.last_seq
    for f in [*news, watchdog]:
        book.fired(f.fingerprint, f.labels, f.annotations, T0)
    changes = book.settle(T0)
    opened = [i for i in changes.incidents.values() if i.seq > before]
    assert len(opened) == 1  # all in namespace shop
    facts = {f.fingerprint: f for f in [*news, watchdog]}
    asked = requests_for(opened, [], facts, T0, 2, SUBJECTS)
    assert [(r.fingerprint, r.reason) for r in asked] == [
        ("fp-KubePodCrashLooping", OPENED),
        ("fp-KubeHpaMaxedOut", OPENED),
    ]
    run = RunIntent("crashloop", "fp-KubePodCrashLooping", T0, opened[0].id, None, news[0], T0)  # type: ignore[arg-type]
    other = RunIntent("volume", "fp-KubePersistentVolumeFillingUp", T0, opened[0].id, None, news[2], T0)  # type: ignore[arg-type]
    asked = requests_for(opened, [run, other], facts, T0, 1, SUBJECTS)
    assert [(r.fingerprint, r.reason) for r in asked] == [
        ("fp-KubePodCrashLooping", OPENED),  # the run asks for the same episode: once
        ("fp-KubePersistentVolumeFillingUp", "playbook volume triggered"),
    ]
    assert not requests_for([], [], facts, T0, 3, SUBJECTS)
    assert re.fullmatch(r"INC-\d{8}-\d{4}", asked[0].incident)


EXPECTED_KIND = {
    "KubePodCrashLooping": "Pod",
    "KubePodNotReady": "Pod",
    "KubeContainerWaiting": "Pod",
    "CPUThrottlingHigh": "Pod",
    "KubeDeploymentRolloutStuck": "Deployment",
    "KubeDeploymentReplicasMismatch": "Deployment",
    "KubeStatefulSetReplicasMismatch": "StatefulSet",
    "KubeDaemonSetRolloutStuck": "DaemonSet",
    "KubeJobFailed": "Job",
    "KubeHpaMaxedOut": "HorizontalPodAutoscaler",
    "KubeHpaReplicasMismatch": "HorizontalPodAutoscaler",
    "KubePersistentVolumeFillingUp": "PersistentVolumeClaim",
    "KubeNodeNotReady": "Node",
    "KubeNodeUnreachable": "Node",
    "KubeletTooManyPods": "Node",
    "NodeFilesystemSpaceFillingUp": "Node",  # node-exporter's host, from its instance
    "NodeFilesystemAlmostOutOfSpace": "Node",
    "KubeCPUOvercommit": "nothing",
    "TargetDown": "nothing",
    "Watchdog": "nothing",
    "InfoInhibitor": "nothing",
}


@pytest.mark.parametrize("entry", CORPUS, ids=lambda e: f"{e.name}-{e.variant or ''}")
def test_every_corpus_alert_has_the_subject_an_on_call_person_would_look_at(entry: Any) -> None:
    labels = alert(entry.name, variant=entry.variant).labels if entry.variant else alert(entry.name).labels
    subject = subject_of(labels, SUBJECTS)
    kind = subject.describe().split(" ")[0]
    assert kind == EXPECTED_KIND.get(entry.name, kind), subject
    assert "kube-state-metrics" not in subject.describe() and "node-exporter" not in subject.describe()
    assert not subject.refused
