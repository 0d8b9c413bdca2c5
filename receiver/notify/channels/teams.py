"""Microsoft Teams through a Workflows webhook: one Adaptive Card posted to a channel per notification.

Office 365 connector webhooks are retired; a Teams channel takes notifications from a Power Automate
flow "When a Teams webhook request is received" that posts the card it is sent. Such a post cannot be
updated, so every signal but ``alerts_changed`` (a refresh a living message would show) posts a card,
and a delivery a crash interrupted is never sent again (it cannot be told whether the flow ran). The
flow's URL carries its authorization (``sig``): it is never shown, logged or used as a metric label.
Documentation followed:
https://learn.microsoft.com/en-us/connectors/teams/?tabs=text1%2Cdotnet#microsoft-teams-webhook (the
message, about 28 KB at most, more than 4 requests a second throttled),
https://learn.microsoft.com/en-us/microsoftteams/platform/task-modules-and-cards/cards/cards-format
(the markdown of TextBlock and FactSet; ``\\n\\n`` for a line break, but ``\\n`` between list items).
"""

from __future__ import annotations

import itertools
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pydantic

from receiver.incidents.lifecycle import Signal
from receiver.notify import escaping, failures
from receiver.notify.channel import ChannelSettingsBase, ChannelType, Replay
from receiver.notify.channels.endpoint import Document, EndpointChannel, fitted
from receiver.notify.content import Compose, Markup, Message, one_line
from receiver.notify.http import Response
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent

ADAPTIVE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.4"
MAX_BYTES = 28_000
"""Teams' "about 28 KB" a message, read as the smaller 28,000 bytes of the request body."""
MAX_LINE = 500
"""Characters of the title, the event and each fact's value (a card line, not a document)."""
MAX_SERVICES = 20
WEBHOOK_ERRORS: Mapping[int, str] = {
    404: "the flow was not found (deleted, or the URL is wrong): set the webhook URL of a running flow",
    401: "the flow refused the URL's signature: set the webhook URL the flow shows now",
    403: "the flow refused the request: check the flow's trigger and who may call it",
}
"""Failures that mean the URL is no longer good: a person must give a new one."""
_LIST_ITEM = re.compile(r"(?:[-*+]|\d+\.) ")
"""A markdown list item's start."""


class TeamsSettings(ChannelSettingsBase):
    """``notify.channels.<name>`` of ``type: teams``: a Workflows flow posting to one Teams channel."""

    type: Literal["teams"]
    webhook_url: pydantic.SecretStr
    """The flow's "HTTP POST URL"; its ``sig`` authorizes the post, so ``env:NAME`` keeps it out of the file."""

    @pydantic.field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
        """An http(s) URL with a host; the error never repeats it."""
        url = urllib.parse.urlsplit(value.get_secret_value())
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError("the flow's webhook URL must be an http(s) URL (https in production)")
        return value


def escape(text: str) -> str:
    """Plain text for a TextBlock or a fact, as one line cut at ``MAX_LINE``, escaped as the templates escape
    values (``escaping``): nothing in it formats, links, mentions (``<at>``) or expands (``{{DATE()}}``). Pure."""
    return escaping.escape(one_line(text, MAX_LINE), Markup.MARKDOWN)


def facts(message: Message) -> list[dict[str, str]]:
    """Severity, status and services, escaped. Pure."""
    services = ", ".join(message.services[:MAX_SERVICES])
    if len(message.services) > MAX_SERVICES:
        services += f" and {len(message.services) - MAX_SERVICES} more"
    shown = (("Severity", message.severity or "unclassified"), ("Status", message.status), ("Services", services))
    return [{"title": title, "value": escape(value)} for title, value in shown if value]


def lines(markdown: str) -> str:
    """``markdown`` with each line shown as a line in a TextBlock. Pure.

    A TextBlock runs single newlines together, as markdown does: lines are set apart by a blank line
    (``\\n\\n``), but for consecutive list items, which take one newline (a blank line between two
    indents the second). Blank lines are not kept: a blank line is already a paragraph's end.
    """
    kept = [line for line in markdown.split("\n") if line.strip()]
    joined = kept[:1]
    for before, line in itertools.pairwise(kept):
        listed = _LIST_ITEM.match(before.lstrip()) and _LIST_ITEM.match(line.lstrip())
        joined.append(("\n" if listed else "\n\n") + line)
    return "".join(joined)


def card(message: Message) -> dict[str, Any]:
    """The Adaptive Card: the title, what happened, the facts, the body (already markdown), a link. Pure."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": escape(message.title), "weight": "Bolder", "size": "Medium", "wrap": True}
    ]
    if message.event:
        body.append({"type": "TextBlock", "text": escape(message.event), "isSubtle": True, "wrap": True})
    body.append({"type": "FactSet", "facts": facts(message)})
    if message.body:
        body.append({"type": "TextBlock", "text": lines(message.body), "wrap": True})
    content: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    opened = [("Open incident", message.link)] + [(a.label, a.url) for a in message.actions]
    actions = [
        {"type": "Action.OpenUrl", "title": t, "url": u} for t, u in opened if u.startswith(("https://", "http://"))
    ]
    if actions:
        content["actions"] = actions
    return content


def post(message: Message) -> dict[str, Any]:
    """The message a Workflows webhook takes: one Adaptive Card attachment. Pure."""
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE, "contentUrl": None, "content": card(message)}]}


def failure(response: Response) -> Failed | None:
    """What the flow's answer means (None: accepted); a URL no longer good is an authentication error. Pure."""
    words = answer_words(response)
    advice = WEBHOOK_ERRORS.get(response.status)
    if advice is None:
        return failures.of_status(response.status, response.headers, words)
    message = ": ".join(part for part in (f"HTTP {response.status}", words, advice) if part)
    return Failed(Reason.AUTH_ERROR, message, permanent=True)


def answer_words(response: Response) -> str:
    """The Logic Apps error's code and message, or the start of the body. Pure."""
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return response.text()
    return ": ".join(str(error[part]) for part in ("code", "message") if error.get(part))


@dataclass(slots=True)
class TeamsChannel(EndpointChannel[TeamsSettings]):
    """A configured Teams channel (its flow)."""

    kind: str = "teams"
    signals: ClassVar[frozenset[Signal]] = frozenset(Signal) - {Signal.ALERTS_CHANGED}
    """Everything but ``alerts_changed``: a posted card cannot be updated to show it."""
    replays: ClassVar[Replay] = Replay.NEVER
    """A post can be neither looked up nor updated: sending it again could post it twice."""
    interval: ClassVar[float] = 0.25
    """More than four requests in one second are throttled."""

    def url(self) -> str:
        """The flow's URL (a credential: never shown)."""
        return self.settings.webhook_url.get_secret_value()

    def document(self, delivery: Delivery, compose: Compose) -> Document:
        """The message to post, within Teams' size limit."""
        return fitted(compose, Markup.MARKDOWN, post, MAX_BYTES)

    def outcome(self, response: Response, document: Document) -> Result:
        """A flow gives no id of what it posts."""
        return failure(response) or Sent()


def build(name: str, settings: TeamsSettings) -> TeamsChannel:
    """The channel ``notify.channels.<name>`` describes."""
    return TeamsChannel(name, settings)


TYPE = ChannelType("teams", TeamsSettings, build)
