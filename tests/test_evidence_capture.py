"""Capturing evidence against kmock's KubernetesEmulator, over real HTTP with the official client.

The cluster (``tests/evidence_cluster``) holds a Deployment whose second
revision crash-loops, a NotReady node, a claim and an HPA; the alerts carry
kube-prometheus-stack's labels. Every request a capture makes is one of
``READS`` (what the chart grants), and none reads a Secret.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import kmock
import pytest

from receiver.evidence.capture import capture
from receiver.evidence.content import Bounds
from receiver.evidence.permissions import READS, Read
from receiver.evidence.records import Outcome
from receiver.incidents.subject import SubjectPolicy
from receiver.kube import Kube
from tests import evidence_cluster as c
from tests import world
from tests.corpus import alert
from tests.test_permissions import _permission

pytestmark = pytest.mark.kmock(cls=kmock.KubernetesEmulator)
CRASHLOOP = c.ALERTS["KubePodCrashLooping"]
SUBJECTS = SubjectPolicy()


def _read(request: Any) -> Read:
    """The permission one request uses (``pods/log`` for a log: a subresource)."""
    used = _permission(request)
    return Read(used.group, used.resource + ("/log" if request.url.path.endswith("/log") else ""), used.verb)


async def test_a_crash_looping_pod_its_logs_owners_rollouts_and_events(kmock: Any) -> None:
    c.populate(kmock)
    found = await capture(c.kube(kmock), CRASHLOOP, c.FIRST_ALERT, Bounds(), SUBJECTS)
    assert found.outcome is Outcome.CAPTURED
    assert found.summary == (
        f"Pod shop/{c.POD}: CrashLoopBackOff, 5 restarts, last exit 1 (Error); "
        "image shop/web:1.4.2 -> shop/web:1.4.3 rolled out 4 minutes before the first alert"
    )
    content = found.content
    web, proxy = content["pod"]["containers"]
    assert content["pod"]["phase"] == "Running" and content["pod"]["node"] == "node-1"
    assert (web["restartCount"], web["waitingReason"], web["lastTerminationReason"], web["lastExitCode"]) == (
        5,
        "CrashLoopBackOff",
        "Error",
        1,
    )
    assert web["lastTerminationMessage"] == "panic; DB_PASSWORD=[REDACTED]"
    assert (proxy["restartCount"], proxy["state"]) == (0, "running")
    logs = content["logs"]
    assert logs["container"] == "web"  # the alert's own container, not the proxy beside it
    assert logs["current"]["lines"][-1] == "2026-11-22T03:00:00Z panic: missing config key PAYMENTS_URL"
    assert logs["previous"]["lines"] == c.PREVIOUS_LOG.splitlines()
    assert content["owners"] == [f"ReplicaSet/{c.RS_NEW}", "Deployment/web"]
    assert [(r["revision"], r["images"]) for r in content["rollouts"]] == [
        (2, ["shop/web:1.4.3"]),
        (1, ["shop/web:1.4.2"]),
    ]  # the other Deployment's ReplicaSet is not among them
    assert [(e["object"], e["reason"]) for e in content["events"]] == [
        (f"ReplicaSet/{c.RS_NEW}", "SuccessfulCreate"),
        ("Deployment/web", "ScalingReplicaSet"),
        (f"Pod/{c.POD}", "BackOff"),
        (f"Pod/{c.POD}", "Pulled"),
    ]  # not the five-hour-old one, not another pod's
    assert "errors" not in content and "truncated" not in content


async def test_nothing_secret_is_kept_and_only_granted_reads_are_made(kmock: Any) -> None:
    c.populate(kmock)
    texts = []
    for labels in c.ALERTS.values():
        found = await capture(c.kube(kmock), labels, c.FIRST_ALERT, Bounds(), SUBJECTS)
        assert found.outcome is Outcome.CAPTURED, found.summary
        texts.append(repr(found.content) + found.summary)
    assert all(c.SECRET not in text and "abcdefghijklmnopqrstuvwxyz012345" not in text for text in texts)
    assert "postgres://web:[REDACTED]@db:5432/shop" in texts[0]
    used = {_read(r) for r in list(kmock)}
    unused = {Read("apps", r, "get") for r in ("statefulsets", "daemonsets")} | {
        Read("batch", r, "get") for r in ("jobs", "cronjobs")
    }  # no alert here is about a StatefulSet, a DaemonSet or a Job
    unused.add(Read("", "nodes", "list"))  # nor names a node by its address (node-exporter's: tested below)
    assert used == READS - unused
    assert not any("secrets" in str(r.url) or "configmaps" in str(r.url) for r in list(kmock))
    events = [r for r in list(kmock) if r.url.path.endswith("/events")]
    assert {r.params["fieldSelector"] for r in events} >= {
        f"involvedObject.kind=Pod,involvedObject.name={c.POD}",
        "involvedObject.kind=Deployment,involvedObject.name=web",
    }


async def test_a_node_a_claim_a_rollout_and_an_hpa(kmock: Any) -> None:
    c.populate(kmock)
    kube = c.kube(kmock)
    node = await capture(kube, c.ALERTS["KubeNodeNotReady"], c.FIRST_ALERT, Bounds(), SUBJECTS)
    assert node.summary == f"Node {c.NODE}: Ready=Unknown (NodeStatusUnknown)"
    ready = node.content["node"]["conditions"][1]
    assert (ready["type"], ready["message"]) == ("Ready", "Kubelet stopped posting node status.")
    assert "pod" not in node.content  # kube-state-metrics' own pod is not read
    claim = await capture(kube, c.ALERTS["KubePersistentVolumeFillingUp"], c.FIRST_ALERT, Bounds(), SUBJECTS)
    assert claim.content["volume"] == {
        "name": "data-db-0",
        "phase": "Bound",
        "capacity": "10Gi",
        "requested": "10Gi",
        "storageClass": "standard",
        "volume": "pvc-3f1c",
        "accessModes": ["ReadWriteOnce"],
        "allowVolumeExpansion": True,
    }
    assert claim.summary == (
        "PersistentVolumeClaim shop/data-db-0: Bound, 10Gi of class standard, which allows expansion"
    )
    rollout = await capture(kube, c.ALERTS["KubeDeploymentRolloutStuck"], c.FIRST_ALERT, Bounds(), SUBJECTS)
    assert rollout.summary == (
        "Deployment shop/web; image shop/web:1.4.2 -> shop/web:1.4.3 rolled out 4 minutes before the first alert"
    )
    assert rollout.content["workload"]["readyReplicas"] == 2 and "pod" not in rollout.content  # not the exporter's
    assert [e["reason"] for e in rollout.content["events"]] == ["ScalingReplicaSet"]
    hpa = await capture(kube, c.ALERTS["KubeHpaMaxedOut"], c.FIRST_ALERT, Bounds(), SUBJECTS)
    assert hpa.summary == "HorizontalPodAutoscaler shop/web: 6 replicas (desired 6, max 6)"
    assert (hpa.content["hpa"]["minReplicas"], hpa.content["hpa"]["target"]) == (2, "Deployment/web")


async def test_logs_are_bounded_in_lines_and_bytes(kmock: Any) -> None:
    c.populate(kmock, logs=False)
    c.serve_logs(kmock, lambda previous: "".join(f"{i:05d} " + "y" * 300 + "\n" for i in range(5000)))
    bounds = Bounds(log_lines=50, log_bytes=4096, total_bytes=64 * 1024)
    found = await capture(c.kube(kmock), CRASHLOOP, c.FIRST_ALERT, bounds, SUBJECTS)
    current = found.content["logs"]["current"]
    assert current["truncated"] and 0 < len(current["lines"]) <= 50
    assert sum(len(line) + 1 for line in current["lines"]) <= 4096 and current["lines"][-1].startswith("04999 ")
    asked = [r for r in list(kmock) if r.url.path.endswith("/log")]
    assert {(r.params["tailLines"], r.params["limitBytes"], r.params["container"]) for r in asked} == {
        ("50", "4096", "web")
    }


async def test_the_whole_evidence_is_bounded(kmock: Any) -> None:
    c.populate(kmock, logs=False)
    c.serve_logs(kmock, lambda previous: "".join(f"{i:05d} " + "z" * 900 + "\n" for i in range(500)))
    bounds = Bounds(log_lines=500, log_bytes=400_000, total_bytes=32 * 1024)
    found = await capture(c.kube(kmock), CRASHLOOP, c.FIRST_ALERT, bounds, SUBJECTS)
    assert found.content["truncated"] is True and len(repr(found.content).encode()) < 40 * 1024
    assert found.content["pod"]["containers"][0]["restartCount"] == 5  # what matters most survives the cut


@pytest.mark.parametrize(("status", "why"), [(403, "forbidden (403)"), (404, "not found (404)")])
async def test_a_capture_that_cannot_read_says_why(kmock: Any, status: int, why: str) -> None:
    c.populate(kmock)
    kmock["get"] << status
    found = await capture(c.kube(kmock), CRASHLOOP, c.FIRST_ALERT, Bounds(), SUBJECTS)
    assert found.outcome is Outcome.FAILED
    assert any(why in e for e in found.content["errors"]) and why in found.summary


async def test_a_missing_previous_log_leaves_the_rest(kmock: Any) -> None:
    c.populate(kmock, logs=False)
    kmock[kmock.subresource("log")][{"previous": "true"}] << 400
    c.serve_logs(kmock, lambda previous: c.CURRENT_LOG)
    found = await capture(c.kube(kmock), CRASHLOOP, c.FIRST_ALERT, Bounds(), SUBJECTS)
    assert found.outcome is Outcome.PARTIAL
    assert "previous" not in found.content["logs"] and found.content["logs"]["current"]["lines"]
    assert any("(previous)" in e and "400" in e for e in found.content["errors"])
    assert found.summary.startswith(f"Pod shop/{c.POD}: CrashLoopBackOff") and "(partial: " in found.summary


async def test_a_capture_that_hangs_ends_at_its_deadline_keeping_what_it_read(kmock: Any) -> None:
    c.populate(kmock, logs=False)
    release = asyncio.Event()

    async def hang(request: Any) -> bytes:
        await release.wait()
        return b""

    kmock[kmock.subresource("log")] << hang
    bounds = Bounds(deadline=timedelta(seconds=0.5), request_timeout=timedelta(seconds=5))
    try:
        found = await capture(c.kube(kmock), CRASHLOOP, c.FIRST_ALERT, bounds, SUBJECTS)
    finally:
        release.set()
    assert found.outcome is Outcome.TIMEOUT
    assert found.content["pod"]["containers"][0]["restartCount"] == 5
    assert "took longer than 0:00:00.500000" in found.content["errors"][-1]


async def test_without_credentials_nothing_is_read_and_it_says_so() -> None:
    found = await capture(Kube(None, dry_run=True), CRASHLOOP, c.FIRST_ALERT, Bounds(), SUBJECTS)
    assert found.outcome is Outcome.NO_CREDENTIALS
    assert found.summary == f"Pod shop/{c.POD}: not captured: no Kubernetes credentials"


async def test_a_refused_label_is_a_failure_without_a_request(kmock: Any) -> None:
    found = await capture(c.kube(kmock), {**CRASHLOOP, "pod": "x/../../y"}, c.FIRST_ALERT, Bounds(), SUBJECTS)
    assert found.outcome is Outcome.FAILED and "not a valid DNS-1123" in found.content["errors"][0]
    assert list(kmock) == []


@pytest.mark.parametrize(("instance", "node"), [("10.0.1.12:9100", "worker-2"), ("10.0.9.9:9100", None)])
async def test_a_node_exporter_alert_names_its_node_by_address_and_the_node_is_found_by_it(
    kmock: Any, instance: str, node: str | None
) -> None:
    """node-exporter's alerts carry the node's IP (``instance``), not its name: no GET /nodes/10.0.1.12."""
    world.populate(kmock, c.NOW)
    filling = alert("NodeFilesystemAlmostOutOfSpace", "warning", instance=instance)
    found = await capture(c.kube(kmock), dict(filling.labels), c.FIRST_ALERT, Bounds(), SUBJECTS)
    reads = [str(r.url.path) for r in kmock if r.method == "GET"]
    assert "/api/v1/nodes" in reads and not any(path.startswith("/api/v1/nodes/10.") for path in reads)
    if node is None:
        assert "node" not in found.content and "no node has the address 10.0.9.9" in found.content["errors"]
    else:
        assert found.content["node"]["name"] == node
        assert found.summary == f"Node {node} (10.0.1.12): Ready=Unknown (NodeStatusUnknown)"
        assert [r for r in READS if r.verb == "list" and r.resource == "nodes"]  # granted
