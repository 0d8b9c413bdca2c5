"""``receiver serve`` on a data directory an operator got wrong: a second daemon, a deleted inbox, an empty secret."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp

from receiver.store.sqlite import inbox_path
from tests.e2e.harness import RECEIVER_BIN, Receiver, eventually, free_port, process_gone
from tests.payloads import alert, body

TOKEN = {"Authorization": "Bearer e2e-token"}


async def _serve(receiver: Receiver, port: int, env: dict[str, str]) -> tuple[int, str]:
    """Run ``receiver serve`` on ``receiver``'s config and data directory until it exits; its status and log.

    The log goes to a file, not a pipe: an engine it started would hold a pipe open after its exit.
    """
    log_path = receiver.workdir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(RECEIVER_BIN), "serve", "--config", str(receiver.config), "--listen", f"127.0.0.1:{port}",
            "--data-dir", str(receiver.data_dir), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        status = await asyncio.wait_for(proc.wait(), 20)
    except TimeoutError:
        raise AssertionError(f"receiver serve on port {port} did not stop: {log_path.read_text()[-500:]}") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return status, log_path.read_text()


async def _send(receiver: Receiver, http: aiohttp.ClientSession, name: str) -> None:
    async with http.post(receiver.url + "/api/v1/alerts", data=body(alert(name)), headers=TOKEN) as response:
        assert response.status == 200, await response.text()


async def _processed(receiver: Receiver, name: str) -> None:
    async def firing() -> bool:
        return name in {a["labels"]["alertname"] for a in await receiver.alerts(status="firing")}

    await eventually(firing, f"{name} to be processed", 20)


async def test_a_second_daemon_on_one_data_directory_refuses_to_start(
    processes: dict[str, Any], http: aiohttp.ClientSession
) -> None:
    first: Receiver = processes["receiver"]()
    await first.start()
    assert first.proc is not None
    status, err = await _serve(first, free_port(), first.env)
    assert status == 1, err
    assert f"data directory {first.data_dir} in use by pid {first.proc.pid}" in err
    await _send(first, http, "FirstKeepsWorking")
    await _processed(first, "FirstKeepsWorking")
    await first.kill()  # SIGKILL: the kernel lets go of the lock, a new daemon starts
    await first.start()
    await _send(first, http, "AfterTheKill")
    await _processed(first, "AfterTheKill")


async def test_a_deleted_inbox_still_processes_what_is_accepted_after_it(
    processes: dict[str, Any], http: aiohttp.ClientSession
) -> None:
    receiver: Receiver = processes["receiver"]()
    await receiver.start()
    await _send(receiver, http, "BeforeTheLoss")
    await _processed(receiver, "BeforeTheLoss")
    engine = receiver.engine_pid()
    assert engine is not None
    await receiver.kill()

    async def engine_gone() -> bool:
        return process_gone(engine)

    await eventually(engine_gone, "the engine to exit once the web process is gone", 20)
    inbox = inbox_path(receiver.data_dir / "receiver.db")
    for path in inbox.parent.glob(inbox.name + "*"):
        path.unlink()
    await receiver.start()
    await _send(receiver, http, "AfterTheLoss")
    await _processed(receiver, "AfterTheLoss")
    log = (receiver.workdir / "receiver-2.log").read_text()
    assert "the inbox database ends before what the state processed" in log


async def test_an_empty_api_token_stops_the_start_naming_the_key(processes: dict[str, Any], tmp_path: Path) -> None:
    receiver: Receiver = processes["receiver"]()
    port = free_port()
    status, err = await _serve(receiver, port, {**os.environ, "RECEIVER_API_TOKEN": ""})
    assert status == 2, err
    assert "api.token:" in err and "RECEIVER_API_TOKEN" in err
    assert not receiver.data_dir.exists()
