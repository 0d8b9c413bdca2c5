"""Signed, expiring acknowledge/resolve links: the credential a notification carries to the person it pages.

A link is ``<external_url>/links/<token>``; the token says which incident, which action (acknowledge or
resolve), for whom (the actor the timeline will name) and until when, and is signed with HMAC-SHA256
under a configured secret, so nobody can make one without the secret and nobody can change one.
Opening it (GET) shows a confirmation page; only a POST acts (``receiver.web.links``), so a link
previewer or a mail scanner that follows links changes nothing.

The token is ``<payload>.<mac>``, both URL-safe base64 without padding: the payload is
``incident \\n action \\n expiry (Unix seconds) \\n actor`` in UTF-8; the MAC is the first 16 bytes of
HMAC-SHA256 over a domain prefix and the payload (a 128-bit tag, as RFC 4868 truncates it). Only the
canonical encoding is accepted: changing any character of a token refuses it. Key rotation: a
``Keyring`` signs with its first secret and accepts every one of them. Pure: the time is a parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from receiver.incidents.lifecycle import IncidentStatus

MAC_BYTES = 16
"""The tag's length: the first 128 bits of the HMAC-SHA256."""
MAX_ACTOR = 200
"""Longest actor a link carries (the incident API's bound on an actor)."""
MAX_TOKEN = 1024
"""Longest text ``verify`` looks at; anything longer is malformed without decoding it."""
PATH = "/links/"
"""Where links live under the daemon's external address."""
_DOMAIN = b"receiver-link-v1\x00"
"""Prefixed to what is signed: a MAC made for anything else under the same secret is not a link's."""
_B64 = re.compile(r"[A-Za-z0-9_-]+")
_EXPIRY = re.compile(r"[0-9]{1,12}")
_INCIDENT = re.compile(r"INC-[0-9]{8}-[0-9]{4,9}")


class Action(StrEnum):
    """What a link does."""

    ACKNOWLEDGE = "ack"
    RESOLVE = "resolve"

    @property
    def label(self) -> str:
        """The word people see: ``Acknowledge`` or ``Resolve``."""
        return "Acknowledge" if self is Action.ACKNOWLEDGE else "Resolve"


_ACTIONS = frozenset(a.value for a in Action)


class Refusal(StrEnum):
    """Why a token is refused."""

    MALFORMED = "malformed"
    """Not a token's shape: not two URL-safe base64 parts, or a payload that cannot be read."""
    FORGED = "forged"
    """Its signature is not one any configured secret makes: altered, or made without the secret."""
    EXPIRED = "expired"
    """Genuine, but past its expiry."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What a genuine token says: ``actor`` may ``action`` ``incident`` until ``expires`` (exclusive)."""

    incident: str
    action: Action
    actor: str
    expires: datetime


@dataclass(frozen=True, slots=True)
class Refused:
    """A token that may not be acted on, and why (``message`` is for the person who opened it)."""

    why: Refusal
    message: str


@dataclass(frozen=True, slots=True)
class Keyring:
    """The secrets links are signed with: the first signs, every one verifies (rotation)."""

    secrets: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.secrets or not all(self.secrets):
            raise ValueError("a keyring needs at least one secret, none of them empty")

    def sign(self, claim: Claim) -> str:
        """The token for ``claim``, signed with the first secret."""
        payload = "\n".join((claim.incident, claim.action.value, str(_seconds(claim.expires)), claim.actor))
        data = payload.encode()
        return f"{_encode(data)}.{_encode(_mac(self.secrets[0], data))}"

    def verify(self, token: str, now: datetime) -> Claim | Refused:
        """The claim of a genuine, unexpired token, else why it is refused. Constant-time comparison."""
        parts = _parts(token)
        if parts is None:
            return Refused(Refusal.MALFORMED, "this is not a link the receiver made (it may have been cut short)")
        data, mac = parts
        matches = [hmac.compare_digest(_mac(secret, data), mac) for secret in self.secrets]  # all of them, always
        if not any(matches):
            return Refused(Refusal.FORGED, "this link's signature is not valid: it was altered or not made here")
        claim = _claim(data)
        if claim is None:
            return Refused(Refusal.MALFORMED, "this link's content cannot be read")
        if now >= claim.expires:
            return Refused(Refusal.EXPIRED, f"this link expired at {claim.expires:%Y-%m-%d %H:%M} UTC")
        return claim


@dataclass(frozen=True, slots=True)
class Signer:
    """Makes the links of a notification: a keyring, how long a link lasts, the daemon's external address."""

    keyring: Keyring
    ttl: timedelta
    base_url: str

    def links(self, incident: str, status: IncidentStatus, actor: str, now: datetime) -> tuple[tuple[Action, str], ...]:
        """(action, URL) for each action ``offered`` for ``status``, for ``actor``, valid ``ttl`` from ``now``."""
        expires = now + self.ttl
        shown = bounded_actor(actor)
        return tuple(
            (action, self.url(self.keyring.sign(Claim(incident, action, shown, expires)))) for action in offered(status)
        )

    def url(self, token: str) -> str:
        """The absolute address of ``token``'s page."""
        return f"{self.base_url.rstrip('/')}{PATH}{token}"


def offered(status: IncidentStatus) -> tuple[Action, ...]:
    """The actions a notification offers an incident in ``status``: acknowledge while nobody has, resolve
    while it is open, nothing once it is resolved. Pure."""
    if status is IncidentStatus.TRIGGERED:
        return (Action.ACKNOWLEDGE, Action.RESOLVE)
    if status is IncidentStatus.RESOLVED:
        return ()
    return (Action.RESOLVE,)


def bounded_actor(actor: str) -> str:
    """``actor`` as a link carries it: on one line (control characters made spaces), at most ``MAX_ACTOR``
    characters, ``receiver link`` if nothing is left. Pure."""
    text = " ".join("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in actor).split())
    return text[:MAX_ACTOR] or "receiver link"


def _mac(secret: bytes, data: bytes) -> bytes:
    return hmac.new(secret, _DOMAIN + data, hashlib.sha256).digest()[:MAC_BYTES]


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes | None:
    """``text`` decoded if it is the canonical unpadded URL-safe base64 of some bytes, else None."""
    if not _B64.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _encode(data) == text else None  # unused low bits set: another text of the same bytes


def _parts(token: str) -> tuple[bytes, bytes] | None:
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        return None
    payload, mac = token.split(".")
    data, tag = _decode(payload), _decode(mac)
    if data is None or tag is None or len(tag) != MAC_BYTES:
        return None
    return data, tag


def _claim(data: bytes) -> Claim | None:
    try:
        incident, action, expiry, actor = data.decode("utf-8").split("\n", 3)
    except (UnicodeDecodeError, ValueError):
        return None
    if not _INCIDENT.fullmatch(incident) or not _EXPIRY.fullmatch(expiry) or action not in _ACTIONS:
        return None
    try:
        expires = datetime.fromtimestamp(int(expiry), UTC)
    except (OverflowError, OSError, ValueError):  # past year 9999
        return None
    return Claim(incident, Action(action), actor, expires)


def _seconds(instant: datetime) -> int:
    """Whole Unix seconds, rounded up: a link never lasts less than it was given."""
    whole = int(instant.timestamp())
    return whole + 1 if whole < instant.timestamp() else whole


def keyring_of(secrets: Sequence[str]) -> Keyring:
    """A keyring of text secrets (UTF-8), the first signing."""
    return Keyring(tuple(s.encode() for s in secrets))
