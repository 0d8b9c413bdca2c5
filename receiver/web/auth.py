"""Credentials checks for the webhook and the API, in constant time.

Alertmanager can send a bearer token (``http_config.authorization``) or basic
auth (``http_config.basic_auth``); either is accepted when configured. With
neither configured the webhook is open (fine on loopback, warned about
elsewhere). Secrets are compared with ``hmac.compare_digest`` so that timing
reveals nothing about how much of a guess was right. A header that is not
text (bytes that are not UTF-8) is a wrong credential, like any other.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr

from receiver.config import ApiSettings, WebhookSettings


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request must present; an empty set lets every request in."""

    bearer_token: bytes | None = None
    basic_user: bytes | None = None
    basic_password: bytes | None = None

    @classmethod
    def for_webhook(cls, settings: WebhookSettings) -> Credentials:
        """The webhook's credentials: bearer token and/or basic auth."""
        basic = settings.basic_auth
        return cls(
            bearer_token=_secret(settings.bearer_token),
            basic_user=basic.username.encode() if basic else None,
            basic_password=basic.password.get_secret_value().encode() if basic else None,
        )

    @classmethod
    def for_api(cls, settings: ApiSettings) -> Credentials:
        """The API's credentials: a bearer token."""
        return cls(bearer_token=_secret(settings.token))

    @property
    def required(self) -> bool:
        """Whether any credential is configured."""
        return self.bearer_token is not None or self.basic_password is not None

    def allows(self, request: web.Request) -> bool:
        """Whether ``request`` carries a valid credential (or none is needed)."""
        if not self.required:
            return True
        scheme, _, value = _header_bytes(request, "Authorization").partition(b" ")
        scheme = scheme.lower()
        if scheme == b"bearer" and self.bearer_token is not None:
            return hmac.compare_digest(value.strip(), self.bearer_token)
        if scheme == b"basic" and self.basic_password is not None and self.basic_user is not None:
            return _basic_ok(value.strip(), self.basic_user, self.basic_password)
        return False


def _header_bytes(request: web.Request, name: str) -> bytes:
    """The header's value as the client sent it: aiohttp keeps bytes that are not UTF-8 as surrogates."""
    try:
        return request.headers.get(name, "").encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # no bytes to give back: no credential
        return b""


def _basic_ok(encoded: bytes, user: bytes, password: bytes) -> bool:
    try:
        given_user, sep, given_password = base64.b64decode(encoded, validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return False
    user_ok = hmac.compare_digest(given_user, user)
    password_ok = hmac.compare_digest(given_password, password)
    return bool(sep) and user_ok and password_ok


def unauthorized(realm: str) -> web.Response:
    """401 with a JSON body and the challenge a client needs."""
    return web.json_response(
        {"error": "missing or invalid credentials"},
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}", Basic realm="{realm}"'},
    )


def _secret(value: SecretStr | None) -> bytes | None:
    return value.get_secret_value().encode() if value is not None else None
