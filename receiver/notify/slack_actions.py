"""Slack interactivity, the pure part: is a request Slack's, and what does a button click ask of us.

The incident's message carries buttons (``slack_blocks``); a click comes back as a ``block_actions``
interaction, a form field ``payload`` holding JSON, signed with the Slack app's signing secret. This
module checks the signature (``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``, compared in constant
time, the timestamp within ``REPLAY_WINDOW`` of now either way), reads the payload, and turns each
button into a ``Command`` on an incident or a run, or a ``Refusal`` saying why not. The web handler
(``receiver.web.slack_interactions``) does the HTTP and carries the commands out; Socket Mode's
frames are read here too (``socket_message``); nothing here reads a clock, a store or the network.

Who clicked: the configured person whose ``slack_user`` is the clicking user's id, else
``slack:<user id>``. Anyone in the channel may acknowledge or resolve (they see the incident, and the
request is Slack's); approving or rejecting a playbook run needs a configured person, as it starts or
stops changes to the cluster.

Documentation followed: https://api.slack.com/authentication/verifying-requests-from-slack ,
https://api.slack.com/reference/interaction-payloads/block-actions ,
https://api.slack.com/reference/block-kit/block-elements#button (``action_id`` at most 255
characters, ``value`` at most 2,000).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

REPLAY_WINDOW = timedelta(minutes=5)
"""A request signed longer ago than this (or this far in the future) is refused: it may be a replay."""
VERSION = "v0"
MAX_TIMESTAMP_DIGITS = 12
MAX_VALUE = 2_000
"""Slack's limit on a button's ``value`` (its ``action_id``: 255)."""
INCIDENT_ID = re.compile(r"INC-[0-9]{8}-[0-9]{4,9}")
RUN_ID = re.compile(r"[0-9]{1,18}")
USER_ID = re.compile(r"[A-Z0-9]{2,40}")
RESPONSE_HOST = "hooks.slack.com"
"""Where Slack's ``response_url`` points (an interaction's answers to the clicking user go there)."""
AWAITING = re.compile(r"run ([0-9]{1,18}) awaits approval")
"""How the runner says a run waits for approval, in the timeline line a notification carries."""


class Op(StrEnum):
    """What a button asks; its value is the button's ``action_id``."""

    ACKNOWLEDGE = "receiver_acknowledge"
    RESOLVE = "receiver_resolve"
    APPROVE = "receiver_approve"
    REJECT = "receiver_reject"

    @property
    def on_run(self) -> bool:
        """Whether the button's value is a run id (else an incident id)."""
        return self in (Op.APPROVE, Op.REJECT)


@dataclass(frozen=True, slots=True)
class Interaction:
    """A signed ``block_actions`` payload, as far as we use it."""

    user: str
    """The clicking user's Slack id (``U0123ABCD``)."""
    actions: tuple[tuple[str, str], ...]
    """(``action_id``, ``value``) of each action, in order."""
    response_url: str = ""


@dataclass(frozen=True, slots=True)
class Command:
    """A change to make: ``op`` on ``target`` (an incident or run id) by ``actor``."""

    op: Op
    target: str
    actor: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """A click that changes nothing, and why (told to the clicking user only)."""

    why: str


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's ``X-Slack-Signature`` of ``body`` sent at ``timestamp`` under ``secret``. Pure."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def forged(secrets: Sequence[str], timestamp: str | None, signed: str | None, body: bytes, now: datetime) -> str | None:
    """Why the request is not one Slack signed with one of ``secrets`` within the replay window; None if it is.

    Pure: ``now`` is the caller's clock. The reasons name what is wrong, never a secret.
    """
    if not timestamp or not signed:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS):
        return "X-Slack-Request-Timestamp is not a Unix time in seconds"
    age = now.timestamp() - int(timestamp)
    if abs(age) > REPLAY_WINDOW.total_seconds():
        when = "old" if age > 0 else "in the future"
        return f"X-Slack-Request-Timestamp is {abs(int(age))} s {when}: more than {REPLAY_WINDOW} (a replay?)"
    given = signed.encode("utf-8", "replace")
    if not any(hmac.compare_digest(given, signature(s, timestamp, body).encode()) for s in secrets):
        return "X-Slack-Signature does not match the body under any configured signing secret"
    return None


def interaction(body: bytes) -> Interaction | None:
    """The ``block_actions`` interaction in a form body; None for another kind (nothing to do).

    Raises ValueError naming what is wrong with a body that is not Slack's interaction form. Pure.
    """
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("the body must be a form (application/x-www-form-urlencoded) with a payload field") from None
    found = form.get("payload", [])
    if len(found) != 1:
        raise ValueError("the body must carry one payload field")
    try:
        payload: Any = orjson.loads(found[0])
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise ValueError("payload: must be a JSON object")
    return interaction_of(payload)


def interaction_of(payload: Mapping[str, Any]) -> Interaction | None:
    """The ``block_actions`` interaction a decoded payload is (None: another kind). ValueError naming what is wrong.
    Pure."""
    if payload.get("type") != "block_actions":
        return None
    return _block_actions(payload)


def _block_actions(payload: Mapping[str, Any]) -> Interaction:
    user = payload.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        raise ValueError("payload.user.id: must be a Slack user id")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise ValueError("payload.actions: must be a list of actions")
    pairs = tuple((_text(a, "action_id", 255), _text(a, "value", MAX_VALUE)) for a in actions[:25])
    url = payload.get("response_url")
    return Interaction(user_id, pairs, url if isinstance(url, str) else "")


def _text(action: Mapping[str, Any], key: str, limit: int) -> str:
    value = action.get(key, "")
    return value[:limit] if isinstance(value, str) else ""


def actor(user: str, people: Mapping[str, str]) -> str:
    """Who clicked: the configured person with that ``slack_user``, else ``slack:<user id>``. Pure."""
    return people.get(user) or f"slack:{user}"


def decide(clicked: Interaction, people: Mapping[str, str]) -> list[Command | Refusal]:
    """What each action of ``clicked`` asks, or why it is refused. ``people``: Slack user id -> person. Pure."""
    return [_one(action_id, value, clicked.user, people) for action_id, value in clicked.actions]


def _one(action_id: str, value: str, user: str, people: Mapping[str, str]) -> Command | Refusal:
    try:
        op = Op(action_id)
    except ValueError:
        return Refusal(f"this button ({action_id[:100]!r}) is not one of receiver's")
    pattern, what = (RUN_ID, "run") if op.on_run else (INCIDENT_ID, "incident")
    if not pattern.fullmatch(value):
        return Refusal(f"the button names no {what} ({value[:100]!r})")
    if op.on_run and user not in people:
        return Refusal(
            f"only people configured in oncall.people (by slack_user) may approve or reject a run; {user} is not"
        )
    return Command(op, value, actor(user, people))


def awaiting_run(text: str) -> str | None:
    """The id of the run a ``run_awaiting_approval`` notification's text announces, if it names one. Pure."""
    found = AWAITING.match(text)
    return found[1] if found else None


def answerable(url: str, origins: Sequence[str] = ()) -> bool:
    """Whether ``url`` is a ``response_url`` to post to: Slack's hooks host over HTTPS, or under one of ``origins``
    (the configured channels' API origins: a proxy, a test's fake). Pure."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme == "https" and parts.hostname == RESPONSE_HOST and not parts.username:
        return True
    return any(url.startswith(origin.rstrip("/") + "/") for origin in origins if origin)


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (empty if it has none). Pure."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


# ---- Socket Mode ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """A Socket Mode message to acknowledge by its ``envelope_id``; ``payload`` is an interaction's when ``type``
    is ``interactive``."""

    envelope_id: str
    type: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Slack is about to close the connection (``refresh_requested``, ``warning``, ``link_disabled``)."""

    reason: str


def socket_message(text: str) -> Envelope | Disconnect | None:
    """What a Socket Mode text frame is: an envelope to acknowledge, a disconnect, or nothing to act on
    (``hello``, anything unknown). Pure.

    https://api.slack.com/apis/socket-mode : ``{"envelope_id", "type", "payload", "accepts_response_payload"}``,
    acknowledged by sending back ``{"envelope_id": ...}``.
    """
    try:
        message: Any = orjson.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if message.get("type") == "disconnect":
        return Disconnect(str(message.get("reason") or "unknown")[:100])
    envelope_id = message.get("envelope_id")
    if not isinstance(envelope_id, str) or not envelope_id or len(envelope_id) > 200:
        return None
    payload = message.get("payload")
    return Envelope(envelope_id, str(message.get("type") or ""), payload if isinstance(payload, dict) else {})
