"""The ceiling: a bare aiohttp handler that parses the same JSON and answers 200.

It does what any receiver on this stack must do at the least (read the body,
parse it) and nothing else: no validation, no storage, no metrics.
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    """Parse the notification and say it was received."""
    payload = json.loads(await request.read())
    return web.json_response({"status": "accepted", "alerts": len(payload["alerts"])})


def main() -> None:
    """Serve the bare handler on the given port until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/api/v1/alerts", handle)
    app.router.add_get("/readyz", lambda _: _ok())
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


async def _ok() -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    main()
