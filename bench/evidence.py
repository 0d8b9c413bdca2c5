"""``python -m bench.evidence``: from an incident opening to its evidence being stored, against the emulator.

A real ``receiver serve`` (web and engine processes, SQLite with
``synchronous: full``) is given a kubeconfig pointing at kmock's
KubernetesEmulator, served by this process on loopback. The emulator holds,
for each round, a namespace with a Deployment, its two ReplicaSet revisions,
a crash-looping Pod with its logs, and events. Each round posts one
``KubePodCrashLooping`` alert (kube-prometheus-stack's labels) for that
round's pod: a new incident opens and asks for evidence. The time measured is
the receiver's own: from the incident's ``detectedAt`` (the notification's
receipt, when the incident opens) to the evidence's ``capturedAt`` (stored,
with its timeline line), both read back through the API, so the benchmark's
polling adds nothing to them. Every capture makes 9 requests: the pod, its
current and previous logs, its ReplicaSet and Deployment, the ReplicaSets,
and the events of the three objects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import yaml

from bench.run import receiver_serving, scratch

TOKEN = "bench-api-token-0123456789"
LOG = "".join(f"2026-11-22T02:59:{i % 60:02d}Z request {i} failed: upstream timeout\n" for i in range(200))


def _put(emulator: Any, resource: tuple[str, str, str], namespace: str, name: str, obj: dict[str, Any]) -> None:
    emulator.objects[emulator.resource(*resource), namespace, name] = obj


def _owner(kind: str, name: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True}]


def _populate(emulator: Any, ns: str) -> None:
    """One namespace: Deployment web, ReplicaSets of revisions 1 and 2, a crash-looping Pod, events."""
    _put(emulator, ("apps", "v1", "deployments"), ns, "web", {"metadata": {"name": "web", "namespace": ns}})
    for name, revision, image in (("web-5f6d7c8b9", 1, "shop/web:1.4.2"), ("web-7d4b9c6f5", 2, "shop/web:1.4.3")):
        _put(emulator, ("apps", "v1", "replicasets"), ns, name, {
            "metadata": {
                "name": name, "namespace": ns, "creationTimestamp": "2026-11-22T02:51:00Z",
                "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                "ownerReferences": _owner("Deployment", "web"),
            },
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
        })  # fmt: skip
    _put(emulator, ("", "v1", "pods"), ns, "web-7d4b9c6f5-x2x9z", {
        "metadata": {"name": "web-7d4b9c6f5-x2x9z", "namespace": ns,
                     "ownerReferences": _owner("ReplicaSet", "web-7d4b9c6f5")},
        "spec": {"containers": [{"name": "web", "image": "shop/web:1.4.3"}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "web", "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
        }]},
    })  # fmt: skip
    for kind, name in (("Pod", "web-7d4b9c6f5-x2x9z"), ("ReplicaSet", "web-7d4b9c6f5"), ("Deployment", "web")):
        _put(emulator, ("", "v1", "events"), ns, f"{name}.1", {
            "metadata": {"name": f"{name}.1", "namespace": ns},
            "involvedObject": {"kind": kind, "name": name, "namespace": ns},
            "reason": "BackOff", "message": "Back-off restarting failed container", "type": "Warning",
            "lastTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })  # fmt: skip


def _body(ns: str) -> bytes:
    labels = {
        "alertname": "KubePodCrashLooping", "namespace": ns, "pod": "web-7d4b9c6f5-x2x9z", "container": "web",
        "reason": "CrashLoopBackOff", "severity": "warning", "job": "kube-state-metrics",
        "endpoint": "http", "instance": "10.244.1.7:8080", "service": "kube-prometheus-stack-kube-state-metrics",
        "prometheus": "monitoring/kube-prometheus-stack-prometheus", "uid": f"uid-{ns}",
    }  # fmt: skip
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": "crash looping"},
        "startsAt": "2026-11-22T02:55:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }
    return json.dumps({"version": "4", "status": "firing", "receiver": "r", "alerts": [alert]}).encode()


async def run(args: argparse.Namespace, workdir: Path) -> int:
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator):
        namespaces = [f"ns-{i:04d}" for i in range(args.rounds)]
        for ns in namespaces:
            _populate(emulator, ns)
        emulator[emulator.subresource("log")] << LOG.encode()
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "e",
            "clusters": [{"name": "e", "cluster": {"server": str(emulator.url).rstrip("/")}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "e", "context": {"cluster": "e", "user": "u"}}],
        }))  # fmt: skip
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "RECEIVER_API_TOKEN": TOKEN}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        config = {"log_level": "warning", "remediation": {"playbook_dirs": []}}
        async with receiver_serving(workdir, config, env) as (url, _):
            return await _measure(args, url, namespaces)


async def _measure(args: argparse.Namespace, url: str, namespaces: list[str]) -> int:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        for ns in namespaces:
            async with http.post(url + "/api/v1/alerts", data=_body(ns)) as answer:
                assert answer.status == 200, await answer.text()
            await asyncio.sleep(args.spacing)
        deadline = time.monotonic() + 60
        latencies: dict[str, float] = {}
        outcomes: dict[str, int] = {}
        while len(latencies) < len(namespaces) and time.monotonic() < deadline:
            async with http.get(url + "/api/v1/incidents?limit=500", headers=auth) as listed:
                incidents = (await listed.json())["incidents"]
            for incident in incidents:
                if incident["id"] in latencies:
                    continue
                async with http.get(f"{url}/api/v1/incidents/{incident['id']}", headers=auth) as detail:
                    evidence = (await detail.json())["evidence"]
                if evidence and evidence[0]["capturedAt"]:
                    opened = datetime.fromisoformat(incident["detectedAt"])
                    stored = datetime.fromisoformat(evidence[0]["capturedAt"])
                    latencies[incident["id"]] = (stored - opened).total_seconds() * 1000
                    outcomes[evidence[0]["outcome"]] = outcomes.get(evidence[0]["outcome"], 0) + 1
            await asyncio.sleep(0.2)
        async with http.get(url + "/metrics") as scraped:
            metrics = await scraped.text()
    found = sorted(latencies.values())
    if not found:
        print("no evidence was stored")
        return 1
    p50 = statistics.median(found)
    p99 = found[min(len(found) - 1, int(0.99 * len(found)))]
    print(f"rounds: {args.rounds}, {args.spacing:g}s apart; evidence stored: {len(found)}; outcomes: {outcomes}")
    print(f"incident opened -> evidence stored: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {found[-1]:.1f} ms")
    total, count = (_sample(metrics, f"receiver_evidence_capture_duration_seconds_{s}") for s in ("sum", "count"))
    if count:
        print(f"of which the capture itself (9 requests to the emulator), on average: {1000 * total / count:.1f} ms")
    return 0 if len(found) == len(namespaces) and outcomes == {"captured": len(found)} else 1


def _sample(exposition: str, name: str) -> float:
    """The value of an unlabelled sample in a Prometheus exposition (0 if absent)."""
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.evidence", description=__doc__)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.2, help="seconds between alerts")
    args = parser.parse_args()
    with scratch("evidence") as workdir:
        code = asyncio.run(run(args, workdir))
    sys.exit(code)


if __name__ == "__main__":
    main()
