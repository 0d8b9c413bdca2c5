"""``GET /api/v1/openapi.yaml``: the OpenAPI document of the whole HTTP API, as shipped in the package.

The document is hand-written (``openapi.yaml`` beside this module) and a test
checks it against the app's routes, both ways, so it cannot drift.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

DOCUMENT = resources.files("receiver.web").joinpath("openapi.yaml").read_bytes()


async def document(_: web.Request) -> web.Response:
    """Serve the document."""
    return web.Response(body=DOCUMENT, content_type="application/yaml")
