"""The ``receiver serve`` process: defaults, SIGTERM, SIGKILL mid-stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from receiver.store.sqlite import inbox_path
from tests.e2e.harness import RECEIVER_BIN, Receiver, eventually, free_port, process_gone, read_inbox
from tests.payloads import alert, body

TOKEN = {"Authorization": "Bearer e2e-token"}


async def test_serve_without_config_uses_safe_defaults(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    proc = await asyncio.create_subprocess_exec(
        str(RECEIVER_BIN), "serve", "--listen", f"127.0.0.1:{port}", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:

        async def ready() -> bool:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                return response.status == 200

        await eventually(ready, "the daemon on built-in defaults", 20)
        async with http.post(f"http://127.0.0.1:{port}/api/v1/alerts", data=body(alert("A"))) as response:
            assert response.status == 200
        assert (tmp_path / "data" / "receiver.db").is_file()
        assert (tmp_path / "data" / "receiver-inbox.db").is_file()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert '"message": "receiver ready"' in log and '"webhook_auth": false' in log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_invalid_config_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yml"
    config.write_text("store:\n  max_pending: lots\n")
    proc = await asyncio.create_subprocess_exec(
        str(RECEIVER_BIN), "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert f"{config}: store.max_pending: Input should be a valid integer" in err.decode()


async def _start_request(receiver: Receiver, payload: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send the headers and half the body of a webhook request, and leave it hanging.

    aiohttp stops reading from connections once shutdown begins, so such a
    request can never complete: the process must still exit on time.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    head = (
        f"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer e2e-token\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    writer.write(head.encode() + payload[: len(payload) // 2])
    await writer.drain()
    return reader, writer


async def _refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_sigterm_finishes_the_request_in_flight_then_exits(
    processes: dict[str, Any], http: aiohttp.ClientSession
) -> None:
    receiver: Receiver = processes["receiver"]({"shutdown_timeout": "10s", "store": {"busy_timeout": "20s"}})
    await receiver.start()
    blocker = sqlite3.connect(inbox_path(receiver.data_dir / "receiver.db"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database: the commit must wait
    try:
        request = asyncio.create_task(
            http.post(receiver.url + "/api/v1/alerts", data=body(alert("InFlight")), headers=TOKEN)
        )
        await asyncio.sleep(0.5)  # the request is in, waiting for its commit
        receiver.signal(signal.SIGTERM)
        await eventually(lambda: _refuses_connections(receiver.port), "the listener to close", 10)
        assert not request.done()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    response = await asyncio.wait_for(request, 10)
    assert response.status == 200
    assert (await response.json())["status"] == "accepted"
    assert await receiver.wait_exit(15) == 0
    [accepted] = await read_inbox(receiver.data_dir)
    assert b"InFlight" in accepted
    await receiver.start()  # whatever was not processed before the exit is processed now

    async def listed() -> bool:
        return [a["labels"]["alertname"] for a in await receiver.alerts(status="firing")] == ["InFlight"]

    await eventually(listed, "the accepted alert to be processed after the restart", 20)


async def test_sigterm_exits_within_the_shutdown_timeout_when_a_client_stalls(processes: dict[str, Any]) -> None:
    receiver: Receiver = processes["receiver"]({"shutdown_timeout": "2s"})
    await receiver.start()
    _, writer = await _start_request(receiver, body(alert("Stalled")))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    receiver.signal(signal.SIGTERM)
    assert await receiver.wait_exit(15) == 0
    elapsed = time.monotonic() - started
    writer.close()
    assert elapsed < 2 + 3, f"took {elapsed:.1f}s to stop with a 2s shutdown timeout"
    assert await read_inbox(receiver.data_dir) == []


async def test_sigkill_mid_stream_loses_no_acknowledged_notification(
    processes: dict[str, Any], http: aiohttp.ClientSession
) -> None:
    receiver: Receiver = processes["receiver"]()
    await receiver.start()
    acknowledged: set[str] = set()
    failed = 0

    async def sender(worker: int) -> None:
        nonlocal failed
        for i in range(2000):
            name = f"Kill{worker}x{i}"
            try:
                async with http.post(receiver.url + "/api/v1/alerts", data=body(alert(name)), headers=TOKEN) as r:
                    if r.status == 200:
                        acknowledged.add(name)
                        continue
            except (aiohttp.ClientError, OSError):
                pass
            failed += 1
            return

    senders = [asyncio.create_task(sender(w)) for w in range(8)]
    await eventually(lambda: _at_least(acknowledged, 200), "200 acknowledged notifications", 30)
    engine = receiver.engine_pid()
    assert engine is not None
    await receiver.kill()
    await asyncio.gather(*senders)
    assert failed >= 1, "no request was in flight at the kill: the test proved nothing"

    async def engine_gone() -> bool:
        return process_gone(engine)

    await eventually(engine_gone, "the engine to exit once the web process is gone", 20)
    inbox = await read_inbox(receiver.data_dir)
    in_inbox = {json.loads(b)["alerts"][0]["labels"]["alertname"] for b in inbox}
    assert acknowledged <= in_inbox, f"{len(acknowledged - in_inbox)} acknowledged notifications were lost"
    await receiver.start()

    async def all_processed() -> bool:
        return acknowledged <= {a["labels"]["alertname"] for a in await receiver.alerts()}

    await eventually(all_processed, "every acknowledged notification to be processed after the restart", 30)


async def _at_least(items: set[str], n: int) -> bool:
    return len(items) >= n
