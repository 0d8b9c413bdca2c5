"""Serving the app: aiohttp's runner, with every connection passing through the app's ``ConnectionGuard``.

``web.run_app`` builds its own ``TCPSite``, whose protocol factory cannot be
wrapped; ``run`` does what it does (a runner that turns SIGTERM and SIGINT
into a graceful exit, one site, cleanup with ``shutdown_timeout`` for
requests in flight) with a ``GuardedSite`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from aiohttp import web

from receiver.web.connections import ConnectionGuard

LISTEN_BACKLOG = 100
"""Connections the kernel queues before they are accepted; asyncio also accepts up to this many in one loop
iteration. 1024 let a flood of connections in a thousand at a time, each evicting a silent one before the loop
had read Alertmanager's request from its fresh connection (bench.hostile: 68 of 200 webhook requests failed);
asyncio's 100 keeps a batch small enough that a connection's first bytes are read before it could be evicted."""


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through ``guard``.

    With TLS the guard sees a connection once its handshake is done; the
    handshake itself gets ``header_timeout``, as the head that follows it.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._guard = guard
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The port listened on (the one the kernel chose when 0 was asked)."""
        assert self._server is not None
        sockets = self._server.sockets  # type: ignore[attr-defined]
        return int(sockets[0].getsockname()[1])

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._guard.limits.header_timeout if self._ssl_context else None,
            reuse_address=True,
            backlog=LISTEN_BACKLOG,
        )


async def start(
    app: web.Application, guard: ConnectionGuard, host: str, port: int, **options: Any
) -> tuple[web.AppRunner, GuardedSite]:
    """Set the app up and listen; ``options`` go to the runner (``handle_signals``, ``shutdown_timeout``...)."""
    ssl_context = options.pop("ssl_context", None)
    runner = web.AppRunner(app, access_log=None, **options)
    await runner.setup()
    site = GuardedSite(runner, guard, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


def run(app: web.Application, guard: ConnectionGuard, host: str, port: int, **options: Any) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (``web.run_app`` with a guarded site)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, guard, host, port, options))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        _finish(loop, main)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loop.close()


def _finish(loop: asyncio.AbstractEventLoop, main: asyncio.Task[None]) -> None:
    """Cancel the serving task (its cleanup lets requests in flight finish), then whatever else still runs."""
    for tasks in ({main}, asyncio.all_tasks(loop)):
        for task in tasks:
            task.cancel()
        with contextlib.suppress(web.GracefulExit):
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


async def _serve(app: web.Application, guard: ConnectionGuard, host: str, port: int, options: dict[str, Any]) -> None:
    runner, _ = await start(app, guard, host, port, handle_signals=True, **options)
    try:
        await asyncio.Event().wait()  # until the signal's GracefulExit cancels this task
    finally:
        await runner.cleanup()
