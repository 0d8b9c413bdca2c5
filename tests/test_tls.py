"""HTTPS and client certificates (mTLS) on the real server socket."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from prometheus_client import CollectorRegistry

from receiver.app import GUARD, create_app
from receiver.config import Settings
from receiver.web import serving
from receiver.web.tls import TlsError, server_context
from tests.payloads import alert, body


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def _files(tmp_path: Path, ca: trustme.CA) -> dict[str, str]:
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return {"cert_file": str(tmp_path / "server.pem"), "key_file": str(tmp_path / "server.key")}


@pytest.fixture
async def serve(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def start(tls: dict[str, str]) -> str:
        settings = make_settings(tls=tls)
        assert settings.tls is not None
        app = create_app(settings, registry=CollectorRegistry())
        context = server_context(settings.tls)
        runner, site = await serving.start(app, app[GUARD], "127.0.0.1", 0, ssl_context=context)  # as `receiver serve`
        runners.append(runner)
        return f"https://127.0.0.1:{site.port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def _client_context(ca: trustme.CA, cert: trustme.LeafCert | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


async def _post(url: str, context: ssl.SSLContext) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/api/v1/alerts", data=body(alert("Tls")), ssl=context) as response,
    ):
        return response.status


async def test_https_serves_the_webhook(tmp_path: Path, ca: trustme.CA, serve: Callable[..., Any]) -> None:
    url = await serve(_files(tmp_path, ca))
    assert await _post(url, _client_context(ca, None)) == 200


async def test_plain_http_to_the_tls_port_gets_nothing(
    tmp_path: Path, ca: trustme.CA, serve: Callable[..., Any]
) -> None:
    url = await serve(_files(tmp_path, ca))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.post(url.replace("https", "http") + "/api/v1/alerts", data=b"{}")


async def test_mtls_requires_a_client_certificate_from_the_ca(
    tmp_path: Path, ca: trustme.CA, serve: Callable[..., Any]
) -> None:
    url = await serve({**_files(tmp_path, ca), "client_ca_file": str(tmp_path / "ca.pem")})
    assert await _post(url, _client_context(ca, ca.issue_cert("alertmanager"))) == 200
    with pytest.raises(aiohttp.ClientError):
        await _post(url, _client_context(ca, None))
    stranger = trustme.CA().issue_cert("alertmanager")
    with pytest.raises(aiohttp.ClientError):
        await _post(url, _client_context(ca, stranger))


def test_unusable_key_is_a_clear_error(tmp_path: Path, ca: trustme.CA, make_settings: Callable[..., Settings]) -> None:
    files = _files(tmp_path, ca)
    Path(files["key_file"]).write_text("not a key")
    settings = make_settings(tls=files)
    assert settings.tls is not None
    with pytest.raises(TlsError, match="cannot load certificates"):
        server_context(settings.tls)
