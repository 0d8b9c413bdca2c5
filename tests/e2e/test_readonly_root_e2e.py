"""The daemon as the chart runs it: the chart's own config.yaml, a read-only root filesystem, data on a volume.

No container runtime runs here, so the pod's filesystem is made the way the
kubelet makes it: a private mount namespace whose root is a read-only view
of the machine's, a writable directory bound at the data path (the volume),
and a tmpfs at /tmp (the chart's emptyDir). ``receiver serve`` runs chrooted
there, web and engine processes, takes a notification, opens an incident
and stops cleanly: nothing it needs writes anywhere else.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests import corpus
from tests.e2e.harness import RECEIVER_BIN, eventually, free_port, require_binary
from tests.test_chart import manifests, one

ROOT = Path(__file__).resolve().parents[2]
VOLUME = Path("/srv")  # an empty directory of the machine's root, where the volume is mounted in the view
WEBHOOK, API = "webhook-token-0123456789abcdef", "api-token-0123456789abcdef"
SCRIPT = """set -e
mount --bind / "$VIEW"
mount -o remount,bind,ro "$VIEW"
mount --rbind /dev "$VIEW/dev"
mount -t proc proc "$VIEW/proc"
mount -t tmpfs -o size=64m tmpfs "$VIEW/tmp"
for keep in $KEEP; do  # the code, when it lives under /tmp (a clone there), stays visible, read-only
    mkdir -p "$VIEW$keep"
    mount --bind "$keep" "$VIEW$keep"
    mount -o remount,bind,ro "$VIEW$keep"
done
mount --bind "$DATA" "$VIEW$VOLUME"
exec chroot "$VIEW" env PYTHONDONTWRITEBYTECODE=1 RECEIVER_WEBHOOK_TOKEN="$WEBHOOK" RECEIVER_API_TOKEN="$API" \
    "$RECEIVER" serve --config "$VOLUME/config.yaml"
"""


@pytest.fixture
async def pod(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, Path]]:
    """``receiver serve`` with the chart's config in a read-only root; (process, url, the volume's directory)."""
    _require_tools()
    data, view, port = tmp_path / "volume", tmp_path / "view", free_port()
    data.mkdir()
    view.mkdir()
    config = yaml.safe_load(one(manifests({}), "ConfigMap", "-config")["data"]["config.yaml"])
    config["listen"] = f"127.0.0.1:{port}"  # loopback here; the pod listens on 0.0.0.0
    config["data_dir"] = str(VOLUME)
    config["remediation"]["playbook_dirs"] = [str(ROOT / "playbooks")]  # the ConfigMap's mount in the pod
    (data / "config.yaml").write_text(yaml.safe_dump(config))
    env = {
        "VIEW": str(view),
        "DATA": str(data),
        "VOLUME": str(VOLUME),
        "RECEIVER": str(RECEIVER_BIN),
        "WEBHOOK": WEBHOOK,
        "API": API,
        "KEEP": " ".join(str(p) for p in {ROOT, Path(sys.prefix)} if p.is_relative_to("/tmp")),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    with (tmp_path / "receiver.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            "unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT, env=env, stderr=log
        )
    try:
        yield process, f"http://127.0.0.1:{port}", data
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_chart_config_runs_on_a_read_only_root_with_data_on_the_volume(
    pod: tuple[asyncio.subprocess.Process, str, Path], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    process, url, data = pod

    async def ready() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"exited {process.returncode}: {(tmp_path / 'receiver.log').read_text()[-800:]}")
        async with http.get(url + "/readyz") as response:
            return response.status == 200

    await eventually(ready, "the receiver in a read-only root to be ready", 30)
    root = _mount_options(process.pid, "/")
    assert "ro" in root, f"the root it runs on is not read-only: {root}"
    pods = [corpus.alert("KubePodCrashLooping", namespace="prod", pod=f"api-7d9f8c6b5-{s}") for s in "abc"]
    body = json.dumps(corpus.payload(pods, starts_at=datetime(2026, 11, 22, 9, 22, 35, tzinfo=UTC))).encode()
    headers = {"Authorization": f"Bearer {WEBHOOK}", "Content-Type": "application/json"}
    async with http.post(url + "/api/v1/alerts", data=body, headers=headers) as response:
        assert response.status == 200

    async def incidents() -> list[Any]:
        async with http.get(url + "/api/v1/incidents", headers={"Authorization": f"Bearer {API}"}) as response:
            found: list[Any] = (await response.json())["incidents"]
            return found

    [incident] = await eventually(incidents, "an incident from the notification", 30)
    assert incident["title"] == "KubePodCrashLooping in namespace prod"
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert {"receiver.db", "receiver-inbox.db"} <= {p.name for p in data.iterdir()}  # all it wrote is on the volume


def _require_tools() -> None:
    for tool, package in (("unshare", "util-linux"), ("mount", "mount"), ("chroot", "coreutils")):
        require_binary(tool, package)
    if not VOLUME.is_dir():
        pytest.fail(f"{VOLUME} is missing: the test mounts the volume there, in a view of the machine's root")


def _mount_options(pid: int, mount_point: str) -> set[str]:
    """The options of the mount a process sees at ``mount_point`` (from its /proc/<pid>/mountinfo)."""
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == mount_point:
            return set(fields[5].split(","))
    raise AssertionError(f"no mount at {mount_point} for pid {pid}")
