"""Real Alertmanager -> real ``receiver serve`` (its engine process, a kubeconfig) -> the Kubernetes emulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from tests.corpus import alert, prometheus_alert
from tests.e2e.harness import alertmanager_config, eventually
from tests.test_kube import pod, put
from tests.test_runs import FAST_CRASHLOOP

TOKEN = "e2e-api-token"


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulator", "cluster": {"server": server}}],
                "users": [{"name": "receiver", "user": {"token": "not-checked"}}],
                "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "receiver"}}],
                "current-context": "emulator",
            }
        )
    )
    return path


def crash_looping(now: float) -> dict[str, Any]:
    """KubePodCrashLooping (tests/corpus) for the pod ``_serving`` makes, as Prometheus posts it."""
    crashing = alert("KubePodCrashLooping", namespace="shop", pod="cart-7d9f-x", container="cart")
    return prometheus_alert(crashing, starts_at=datetime.fromtimestamp(now, UTC))


async def _serving(processes: dict[str, Any], kmock: Any, tmp_path: Path, playbook: str) -> tuple[Any, Any]:
    """A pod to act on, ``receiver serve`` with ``playbook`` and a kubeconfig for the emulator, an Alertmanager."""
    put(kmock, ("", "v1", "pods"), "shop", "cart-7d9f-x", pod("cart-7d9f-x"))
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "playbook.yaml").write_text(playbook)
    receiver = processes["receiver"]({"api": {"token": TOKEN}, "remediation": {"playbook_dirs": [str(playbooks)]}})
    receiver.env["KUBECONFIG"] = str(kubeconfig(tmp_path / "kubeconfig", str(kmock.url).rstrip("/")))
    receiver.env.pop("KUBERNETES_SERVICE_HOST", None)
    await receiver.start()
    am = processes["alertmanager"]()
    await am.start(alertmanager_config(receiver.url + "/api/v1/alerts"))
    return receiver, am


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_a_crash_looping_pod_alert_leads_to_exactly_one_pod_deletion(
    processes: dict[str, Any], kmock: Any, tmp_path: Path
) -> None:
    receiver, am = await _serving(processes, kmock, tmp_path, FAST_CRASHLOOP)
    crashing = crash_looping(await am.now())
    for _ in range(3):  # Prometheus re-sends the firing alert on every evaluation
        await am.push([crashing])
        await asyncio.sleep(0.5)

    async def deleted() -> bool:
        return len(list(kmock["delete"])) >= 1

    await eventually(deleted, "the engine to delete the crash-looping pod", 30)
    await eventually(lambda: receiver.processed_all(am), "the receiver to process every delivery", 30)

    async def ended() -> list[dict[str, Any]] | None:  # every run the deliveries asked for, at its end
        async with receiver.http.get(
            receiver.url + "/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as got:
            found: list[dict[str, Any]] = (await got.json())["runs"]
        return found if found and all(r["finishedAt"] is not None for r in found) else None

    [run] = await eventually(ended, "the run to end", 30)
    assert (run["playbook"], run["status"], run["dryRun"]) == ("crashloop", "succeeded", False)
    assert [(r.method, r.name) for r in kmock["delete"]] == [("DELETE", "cart-7d9f-x")]


SLOW_PLAYBOOK = """
apiVersion: receiver/v1
kind: Playbook
metadata: {name: slow}
spec:
  trigger: {alertname: KubePodCrashLooping}
  steps:
    - name: delete_pod
      action: delete_pod
      target: {namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.pod }}"}
    - {name: settle, action: wait, duration: 60s, timeout: 90s}
    - name: mark
      action: annotate
      target: {kind: Pod, namespace: "{{ alert.labels.namespace }}", name: "{{ alert.labels.pod }}"}
      values: {receiver/seen: "true"}
"""


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_a_run_cut_by_a_crash_is_interrupted_and_never_repeated(
    processes: dict[str, Any], kmock: Any, tmp_path: Path
) -> None:
    receiver, am = await _serving(processes, kmock, tmp_path, SLOW_PLAYBOOK)
    await am.push([crash_looping(await am.now())])

    async def deleted() -> bool:
        return len(list(kmock["delete"])) >= 1

    await eventually(deleted, "the first step to delete the pod", 30)
    await receiver.kill()  # SIGKILL during the 60 s wait: web and engine die, the run is left "running"
    await receiver.start()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def interrupted() -> dict[str, Any] | None:
        async with receiver.http.get(receiver.url + "/api/v1/runs", headers=auth) as got:
            runs = (await got.json())["runs"]
        return runs[0] if runs and runs[0]["status"] == "interrupted" else None

    run = await eventually(interrupted, "the restarted engine to mark the run interrupted", 30)
    assert "not started again" in run["reason"]
    await asyncio.sleep(1.0)
    assert [r.method for r in kmock["delete"]] == ["DELETE"] and list(kmock["patch"]) == []  # nothing repeated
