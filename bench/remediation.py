"""``python -m bench.remediation``: from webhook receipt to the first Kubernetes API request of a playbook.

A real ``receiver serve`` (web and engine processes, SQLite with
``synchronous: full``) is given a kubeconfig pointing at kmock's
KubernetesEmulator, served by this process on loopback. Each round posts one
crash-looping-pod alert for a pod never seen (a new alert: dedup, incident,
run record, guardrails, then the playbook's first step reads the pod) and
times from just before the POST to the emulator's receipt of the first
request naming that pod. Rounds are spaced so that each meets an idle
receiver, as a real alert usually does; the issue's target is p50 <= 50 ms.
With evidence on (the default), that first request is the evidence capture's
read of the pod: the playbook waits for the evidence to be stored before it
changes anything, so the time to the playbook's DELETE is printed as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import yaml

from bench.run import receiver_serving, scratch
from receiver.alerts.wire import fingerprint

PLAYBOOK = (
    Path(__file__).resolve().parent.parent / "examples" / "playbooks" / "delete-crashlooping-pod.yaml"
).read_text()


RS = "cart-7d9f5c6b4"


def _owner(kind: str, name: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True}]


def _cart(emulator: Any) -> None:
    """The Deployment and ReplicaSet that own the pods: ``delete_pod`` deletes only a pod a controller makes again."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "cart", "namespace": "shop", "uid": "uid-cart"},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "cart", "image": "shop/cart:2.2.0"}]}}},
    }
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": RS,
            "namespace": "shop",
            "uid": f"uid-{RS}",
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "ownerReferences": _owner("Deployment", "cart"),
        },
        "spec": deployment["spec"],
    }
    emulator.objects[emulator.resource("apps", "v1", "deployments"), "shop", "cart"] = deployment
    emulator.objects[emulator.resource("apps", "v1", "replicasets"), "shop", RS] = replicaset


def _body(pod: str) -> bytes:
    labels = {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": pod, "severity": "warning"}
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{pod} is crash looping"},
        "startsAt": "2026-11-22T09:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint(labels),
    }
    return json.dumps({"version": "4", "status": "firing", "receiver": "r", "alerts": [alert]}).encode()


async def _first_request(emulator: Any, pod: str, deadline: float, seen: list[int]) -> tuple[float, float] | None:
    """When the emulator first saw a request naming ``pod``, then its DELETE (perf_counter), polled every 0.5 ms.

    ``seen``: how many requests earlier rounds looked at already (only the new ones are read).
    """
    first = None
    while time.perf_counter() < deadline:
        requests = list(emulator)[seen[0] :]
        if first is None and any(r.name == pod for r in requests):
            first = time.perf_counter()
        if any(r.name == pod and r.method == "DELETE" for r in requests):
            seen[0] += len(requests)
            return (first or time.perf_counter(), time.perf_counter())
        await asyncio.sleep(0.0005)
    return None


async def run(args: argparse.Namespace, workdir: Path) -> int:
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator):
        _cart(emulator)
        for i in range(args.rounds):
            name = f"cart-{i}"
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "shop", "ownerReferences": _owner("ReplicaSet", RS)},
                "spec": {"containers": []},
            }
            emulator.objects[emulator.resource("", "v1", "pods"), "shop", name] = pod
        playbooks = workdir / "playbooks"
        playbooks.mkdir()
        (playbooks / "crashloop.yaml").write_text(PLAYBOOK)
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "e",
            "clusters": [{"name": "e", "cluster": {"server": str(emulator.url).rstrip("/")}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "e", "context": {"cluster": "e", "user": "u"}}],
        }))  # fmt: skip
        config = {
            "log_level": "warning",
            "remediation": {"playbook_dirs": [str(playbooks)], "guardrails": {
                "max_runs_per_hour": 100_000, "max_pods_deleted_per_hour": 100_000}},
        }  # fmt: skip
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        async with receiver_serving(workdir, config, env) as (url, _):
            return await _measure(args, emulator, url)


async def _measure(args: argparse.Namespace, emulator: Any, url: str) -> int:
    async with aiohttp.ClientSession() as http:
        latencies: list[float] = []
        deletes: list[float] = []
        missing = 0
        seen = [0]
        for i in range(args.rounds):
            await asyncio.sleep(args.spacing)
            started = time.perf_counter()
            async with http.post(url + "/api/v1/alerts", data=_body(f"cart-{i}")) as answer:
                assert answer.status == 200, await answer.text()
            at = await _first_request(emulator, f"cart-{i}", started + 5.0, seen)
            if at is None:
                missing += 1
            else:
                latencies.append((at[0] - started) * 1000)
                deletes.append((at[1] - started) * 1000)
    if not latencies:
        print("no playbook request reached the emulator")
        return 1
    print(f"rounds: {args.rounds}, {args.spacing:g}s apart; missing: {missing}")
    p50 = _report("webhook receipt -> first Kubernetes request", latencies)
    _report("webhook receipt -> the playbook's DELETE", deletes)
    ok = p50 <= 50 and not missing
    print(f"target p50 <= 50 ms: {'MET' if ok else 'MISSED'}")
    return 0 if ok else 1


def _report(what: str, latencies: list[float]) -> float:
    """Print the percentiles of ``latencies`` (ms); the median."""
    latencies = sorted(latencies)
    p50 = statistics.median(latencies)
    p90 = latencies[int(0.9 * (len(latencies) - 1))]
    print(f"{what}: p50 {p50:.1f} ms, p90 {p90:.1f} ms, max {latencies[-1]:.1f} ms")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.remediation", description=__doc__)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.2, help="seconds between alerts")
    args = parser.parse_args()
    with scratch("remediation") as workdir:
        code = asyncio.run(run(args, workdir))
    sys.exit(code)


if __name__ == "__main__":
    main()
