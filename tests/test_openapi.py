"""The OpenAPI document describes every route of the app, and only those."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from receiver.app import create_app
from receiver.config import Settings

_METHODS = {"get", "post", "put", "patch", "delete"}


def _spec() -> dict[str, Any]:
    from receiver.web.openapi import DOCUMENT

    spec: dict[str, Any] = yaml.safe_load(DOCUMENT)
    return spec


def _routes(make_settings: Callable[..., Settings]) -> set[tuple[str, str]]:
    app = create_app(make_settings(), registry=CollectorRegistry(), engine="process")
    routes = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue  # aiohttp adds HEAD beside every GET
        info = route.resource.get_info() if route.resource is not None else {}
        routes.add((route.method.lower(), info.get("path") or info.get("formatter", "")))
    return routes


def test_every_route_is_documented_and_every_documented_path_is_routed(make_settings: Callable[..., Settings]) -> None:
    spec = _spec()
    documented = {(method, path) for path, item in spec["paths"].items() for method in item if method in _METHODS}
    assert _routes(make_settings) == documented


def test_the_document_is_openapi_3_1_with_resolvable_references() -> None:
    spec = _spec()
    assert spec["openapi"].startswith("3.1")
    text = yaml.safe_dump(spec)
    for ref in {line.split("$ref: ")[1].strip().strip("'\"") for line in text.splitlines() if "$ref: " in line}:
        node: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # a KeyError here is a dangling reference
        assert node


async def test_the_document_is_served(aiohttp_client: Any, make_settings: Callable[..., Settings]) -> None:
    from receiver.web.openapi import DOCUMENT

    client = await aiohttp_client(create_app(make_settings(), registry=CollectorRegistry(), engine="inline"))
    response = await client.get("/api/v1/openapi.yaml")
    assert response.status == 200
    assert response.content_type == "application/yaml"
    assert await response.read() == DOCUMENT
