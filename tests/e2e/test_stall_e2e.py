"""A real ``receiver serve`` under a 1,024-file limit: idle and trickling clients never keep Alertmanager waiting."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.e2e.harness import Receiver
from tests.payloads import alert, body

TOKEN = {"Authorization": "Bearer e2e-token"}
IDLE_CONNECTIONS = 1_100
TRICKLES = 4
LIMITS = {"server": {"header_timeout": "3s", "body_timeout": "3s"}}
ANSWERED_WITHIN = 2.0
"""Seconds a proper post may take beside the stalling clients: well under the 3 s header timeout, which a
receiver that made it wait for an idle connection to time out would need at least (a 1 s bound failed once
at 1.03 s on a loaded 2-core machine)."""


@contextlib.asynccontextmanager
async def idle_connections(port: int, count: int) -> AsyncIterator[int]:
    """Open ``count`` connections that never send a byte (100 at a time, 3 s each at most); how many connected."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count + 256:  # this process needs the descriptors the server lacks
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count + 256, hard), hard))
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.setblocking(False)
        connected = 0
        for start in range(0, count, 100):
            done = await asyncio.gather(*(_connect(s, port) for s in sockets[start : start + 100]))
            connected += sum(done)
        yield connected
    finally:
        for s in sockets:
            s.close()


async def _connect(s: socket.socket, port: int) -> bool:
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port)), 3)
    except (TimeoutError, OSError):
        return False
    return True


async def trickle(port: int) -> bytes:
    """An upload sending one byte of its body at a time, for 40 s at most; what the server answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = f"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n{_auth()}\r\n"
        writer.write(head.encode())
        for _ in range(20):
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(reader.read(4096), 2.0)  # the answer, or b"" when closed
            writer.write(b"{")
        return b"still open after 40 s"
    except ConnectionError:
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _auth() -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in TOKEN.items())


async def _post_once(receiver: Receiver) -> float:
    """A proper webhook POST on a fresh connection, as Alertmanager sends it; its answer time (at most 10 s)."""
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)) as session:
        payload = body(alert("StillAnswered", namespace="prod"))
        async with session.post(receiver.url + "/api/v1/alerts", data=payload, headers=TOKEN) as response:
            assert response.status == 200, await response.text()
    return time.perf_counter() - started


async def test_idle_and_trickling_clients_do_not_keep_alertmanager_waiting(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    receiver = Receiver(tmp_path, http, LIMITS, open_files=1024)
    try:
        await receiver.start()
        trickles = [asyncio.create_task(trickle(receiver.port)) for _ in range(TRICKLES)]
        try:
            async with idle_connections(receiver.port, IDLE_CONNECTIONS) as connected:
                assert connected > 1024, connected  # more than the receiver may have open
                answered = [await _post_once(receiver) for _ in range(3)]
                assert max(answered) < ANSWERED_WITHIN, answered
            answers = await asyncio.wait_for(asyncio.gather(*trickles), 60)
        finally:
            for task in trickles:
                task.cancel()
            await asyncio.gather(*trickles, return_exceptions=True)
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
        assert await _post_once(receiver) < ANSWERED_WITHIN
    finally:
        await receiver.close()
