"""What a channel renders: a message composed from the templates, in the channel's markup and detail.

Channels never see template text or raw incidents: they ask ``Compose`` for a ``Message`` in their
markup (label values already escaped for it by the templates) at a level of detail, and shrink it to
their size limit with ``fit``: first without evidence, then without the alert list, and last the body
cut at the limit. Title, severity, status and link are separate fields, so they always survive. Pure.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum, StrEnum
from typing import Literal, TypeVar

from receiver.notify.story import ActionLink

T = TypeVar("T")


class Markup(StrEnum):
    """The markup a channel's text is in: what untrusted values are escaped for."""

    PLAIN = "plain"
    SLACK = "slack"
    """Slack ``mrkdwn``: ``&``, ``<`` and ``>`` escaped (no link, mention or ``<!channel>`` can be injected)."""
    HTML = "html"
    MARKDOWN = "markdown"
    """Teams' Adaptive Card TextBlock markdown subset."""


class Detail(IntEnum):
    """How much a message carries; each level drops more, to fit a channel's limit."""

    FULL = 0
    NO_EVIDENCE = 1
    NO_ALERTS = 2


Audience = Literal["internal", "external"]


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered notification. ``title``, ``summary`` and ``event`` are plain text (the channel escapes them)."""

    title: str
    """``[SEV2] INC-20261201-0001: KubePodCrashLooping in namespace shop``."""
    severity: str
    """``SEV2``, or empty before the incident is classified."""
    status: str
    link: str
    """The incident's page (empty when no external URL is configured)."""
    summary: str
    """One line: what the incident is (PagerDuty's summary, an email's subject)."""
    event: str
    """One line: what this notification is about (``acknowledged by alice``)."""
    body: str
    """The template's output, in the markup asked, untrusted values escaped for it."""
    services: tuple[str, ...] = ()
    audience: Audience = "internal"
    template: str = "update"
    """Which template made the body: ``declared``, ``update`` or ``resolved``."""
    template_error: str = ""
    """Why the configured template failed and the shipped one made the body (empty when none failed)."""
    actions: tuple[ActionLink, ...] = ()
    """Signed ``Acknowledge``/``Resolve`` links for the person or channel it goes to (the shipped internal templates
    also put them in ``body``); always empty for the external audience. Channels with buttons use these."""


Compose = Callable[[Markup, Detail], Message]
"""Renders the delivery's message in a markup at a level of detail."""


def fit(compose: Compose, markup: Markup, build: Callable[[Message], T], size: Callable[[T], int], limit: int) -> T:
    """The richest payload ``build`` makes that ``size`` says is within ``limit``.

    Tries every ``Detail``; if even the leanest is too large, cuts its body (halving what is cut until
    it fits) and says so at the cut. Raises ``ValueError`` if nothing fits (a title alone over the limit).
    """
    for detail in Detail:
        message = compose(markup, detail)
        payload = build(message)
        if size(payload) <= limit:
            return payload
    body = message.body
    keep = len(body)
    while keep > 0:
        keep //= 2
        payload = build(replace(message, body=truncate(body, keep)))
        if size(payload) <= limit:
            return payload
    raise ValueError(f"the message does not fit in {limit} even without its body")


TRUNCATED = "… (truncated)"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, saying it was cut."""
    if len(text) <= limit:
        return text
    if limit <= len(TRUNCATED):
        return text[:limit]
    return text[: limit - len(TRUNCATED)] + TRUNCATED


def join_lines(lines: Sequence[str]) -> str:
    """Lines joined with newlines, the empty ones left out."""
    return "\n".join(line for line in lines if line)


def one_line(text: str, limit: int) -> str:
    """``text`` on one line: control characters and line breaks made spaces, whitespace collapsed, cut to ``limit``.

    What untrusted text needs before it goes where a line break means something (a mail header, a
    status page's incident name).
    """
    kept = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    return truncate(" ".join(kept.split()), limit)
