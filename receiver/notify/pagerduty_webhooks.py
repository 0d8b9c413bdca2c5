"""PagerDuty webhooks (v3), the pure part: is a request PagerDuty's, and what does its event ask of us.

Someone acknowledges or resolves an incident in PagerDuty; PagerDuty's webhook subscription tells us,
and ours follows. The PagerDuty channel sends our incident's id as the Events API ``dedup_key``, which
PagerDuty keeps as the incident's ``incident_key``: that field of the event's ``data`` names our
incident. The request is signed: ``X-PagerDuty-Signature`` holds one or more ``v1=<hex>`` (several
while a secret is rotated), each the HMAC-SHA256 of the raw body under a subscription's secret; one
match is enough. Only ``incident.acknowledged`` and ``incident.resolved`` change anything; every
other event, and an incident that is not one of ours, is ignored (answered 200: PagerDuty retries
anything else).

No loop: the change is made with the actor ``pagerduty: <who>``, and the PagerDuty channel sends
nothing back for a change whose actor says it came from PagerDuty; the echo of a change we sent
(PagerDuty reports our own acknowledge too) finds our incident already there and changes nothing.

Documentation followed: https://developer.pagerduty.com/docs/webhooks/webhook-signatures/ ,
https://developer.pagerduty.com/docs/webhooks/v3-overview/ (the event: ``event_type``, ``agent``
with ``id``, ``type``, ``summary``; ``data`` the incident with ``incident_key``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from receiver.notify.content import one_line

FROM_PAGERDUTY = "pagerduty:"
"""The start of the actor of every change a PagerDuty webhook makes (the channel sends those nothing back)."""
MAX_SIGNATURES = 10
MAX_WHO = 150
INCIDENT_ID = re.compile(r"INC-[0-9]{8}-[0-9]{4,9}")
EVENTS: Mapping[str, Literal["acknowledge", "resolve"]] = {
    "incident.acknowledged": "acknowledge",
    "incident.resolved": "resolve",
}


@dataclass(frozen=True, slots=True)
class Change:
    """What the event asks: ``op`` on our incident ``incident`` by ``actor``."""

    op: Literal["acknowledge", "resolve"]
    incident: str
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event that changes nothing of ours, and why (logged)."""

    why: str


def signature(secret: str, body: bytes) -> str:
    """One ``v1=`` signature of ``body`` under ``secret``. Pure."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def forged(secrets: Sequence[str], header: str | None, body: bytes) -> str | None:
    """Why the request is not signed by one of ``secrets``; None if one of its signatures matches. Pure."""
    if not header:
        return "missing X-PagerDuty-Signature"
    given = [s.strip().encode("utf-8", "replace") for s in header.split(",")[:MAX_SIGNATURES]]
    expected = [signature(secret, body).encode() for secret in secrets]
    if any(hmac.compare_digest(g, e) for g in given for e in expected):
        return None
    return "X-PagerDuty-Signature has no signature of the body under any configured webhook secret"


def event(body: bytes, people: Mapping[str, str]) -> Change | Ignored:
    """What a signed webhook body asks. ``people``: PagerDuty user id -> person.

    Raises ValueError naming what is wrong with a body that is not a v3 webhook. Pure.
    """
    try:
        document: Any = orjson.loads(body)
    except ValueError:
        document = None
    found = document.get("event") if isinstance(document, dict) else None
    if not isinstance(found, dict) or not isinstance(found.get("event_type"), str):
        raise ValueError("the body must be a PagerDuty v3 webhook: an object with event.event_type")
    op = EVENTS.get(found["event_type"])
    if op is None:
        return Ignored(f"{one_line(found['event_type'], 100)}: not an acknowledgement or a resolution")
    data = found.get("data")
    key = data.get("incident_key") if isinstance(data, dict) else None
    if not isinstance(key, str) or not INCIDENT_ID.fullmatch(key):
        return Ignored(f"incident_key {one_line(str(key), 100)!r} is not one of our incidents' ids")
    return Change(op, key, actor(found.get("agent"), people), f"{op}d in PagerDuty")


def actor(agent: Any, people: Mapping[str, str]) -> str:
    """``pagerduty: <person>`` for a configured ``pagerduty_user``, else the agent's summary. Pure."""
    if not isinstance(agent, dict):
        return f"{FROM_PAGERDUTY} PagerDuty"
    person = people.get(agent["id"]) if isinstance(agent.get("id"), str) else None
    summary = agent.get("summary")
    who = person or (one_line(summary, MAX_WHO) if isinstance(summary, str) else "") or "PagerDuty"
    return f"{FROM_PAGERDUTY} {who}"


def came_from_pagerduty(actor: str) -> bool:
    """Whether a change was made by a PagerDuty webhook (so PagerDuty already knows). Pure."""
    return actor.startswith(FROM_PAGERDUTY)
