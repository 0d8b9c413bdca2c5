"""Slack Socket Mode: the button clicks over a websocket the receiver opens, for clusters Slack cannot reach.

With an app-level token (``xapp-...``, scope ``connections:write``) on a Slack channel, the web
process asks Slack for a websocket URL (``apps.connections.open``), connects, and receives each
interaction in an envelope; it acknowledges the envelope at once (Slack redelivers one that is not
acknowledged), then carries the clicks out exactly as the HTTP endpoint does
(``SlackInteractions.act``: the same commands, people and refusals; answers to the clicking user go
to the interaction's ``response_url``). The token authenticates the connection, so nothing is signed.
Slack closes connections now and then (``disconnect``, ``refresh_requested``): the client opens a
new one at once; after a failure it waits, doubling from ``BACKOFF[0]`` to ``BACKOFF[1]`` seconds.

https://api.slack.com/apis/socket-mode , https://api.slack.com/methods/apps.connections.open .
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from receiver.notify.slack_actions import Disconnect, Envelope, interaction_of, socket_message
from receiver.web.slack_interactions import SlackInteractions

log = logging.getLogger(__name__)
BACKOFF = (1.0, 60.0)
"""First and longest wait before connecting again after a failure."""
OPEN_SECONDS = 10.0
HEARTBEAT_SECONDS = 30.0


class SocketModeError(RuntimeError):
    """Slack refused to open a connection, or answered what is not one."""


class SocketMode:
    """One Slack app's Socket Mode connection, kept open while the app runs."""

    def __init__(self, api_url: str, app_token: str, interactions: SlackInteractions) -> None:
        self._url = api_url.rstrip("/") + "/apps.connections.open"
        self._token = app_token
        self._interactions = interactions
        self._acting: set[asyncio.Task[str]] = set()
        self.connections = 0
        """Connections opened so far (a test waits for one)."""

    async def run(self) -> None:
        """Connect, serve, connect again; until cancelled."""
        delay = BACKOFF[0]
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    reason = await self._serve(session, await self._open(session))
                except (SocketModeError, aiohttp.ClientError, TimeoutError, ValueError) as err:
                    log.warning("Slack Socket Mode: no connection; again in %.0f s", delay, extra={"error": str(err)})
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF[1])
                    continue
                log.info("Slack Socket Mode: the connection ended (%s); opening another", reason)
                delay = BACKOFF[0]

    async def _open(self, session: aiohttp.ClientSession) -> str:
        """A websocket URL from ``apps.connections.open``."""
        headers = {"Authorization": f"Bearer {self._token}"}
        timeout = aiohttp.ClientTimeout(total=OPEN_SECONDS)
        async with session.post(self._url, headers=headers, timeout=timeout) as response:
            answer = await response.json(content_type=None)
        if not isinstance(answer, dict) or answer.get("ok") is not True or not isinstance(answer.get("url"), str):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise SocketModeError(f"apps.connections.open: {str(error or 'not Slack’s answer')[:100]}")
        return str(answer["url"])

    async def _serve(self, session: aiohttp.ClientSession, url: str) -> str:
        """Read envelopes until the connection ends; why it ended."""
        async with session.ws_connect(url, heartbeat=HEARTBEAT_SECONDS) as ws:
            self.connections += 1
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                found = socket_message(frame.data)
                if isinstance(found, Disconnect):
                    return found.reason
                if isinstance(found, Envelope):
                    await ws.send_str(json.dumps({"envelope_id": found.envelope_id}))
                    self._take(found)
            return "closed"

    def _take(self, envelope: Envelope) -> None:
        """Carry out an acknowledged envelope's clicks, without holding up the next envelope."""
        if envelope.type != "interactive":
            return
        try:
            clicked = interaction_of(envelope.payload)
        except ValueError as err:
            log.warning("Slack Socket Mode: an interaction that is not Slack's", extra={"error": str(err)})
            return
        if clicked is None:
            return
        task = asyncio.create_task(self._interactions.act(clicked), name=f"socket mode {envelope.envelope_id}")
        self._acting.add(task)
        task.add_done_callback(self._acting.discard)


async def running(_: web.Application, *, socket: SocketMode) -> AsyncIterator[None]:
    """A ``cleanup_ctx``: the connection is kept while the app runs, and closed at shutdown."""
    task = asyncio.create_task(socket.run(), name="slack socket mode")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
