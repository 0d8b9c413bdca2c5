"""What the Slack channel posts: Block Kit payloads within Slack's limits, untrusted text escaped.

Kept apart from ``slack`` (which sends) because it decides everything a reviewer must trust about
what reaches a channel, and it is pure: alert text is escaped for ``mrkdwn`` (``escaping``: ``&``,
``<``, ``>``; no ``<!channel>``, mention or disguised ``<url|link>`` can be injected) and ``verbatim`` (Slack
parses no bare ``@here`` or channel name in it); the header is ``plain_text`` (never parsed), one
line, cut at 150 characters; a long body is split over sections of at most 3,000 characters, never
inside an ``&amp;`` or a ``<link>``, code fences closed and reopened across the cut; a message keeps
to 50 blocks, 40,000 characters and ``MAX_ECHO`` bytes (``excess`` says by how much it does not, for
``content.fit``).

Limits: https://api.slack.com/reference/block-kit/blocks (50 blocks; header text 150; section text
3,000), https://api.slack.com/changelog/2018-04-truncating-really-long-messages (text 40,000),
escaping: https://api.slack.com/reference/surfaces/formatting#escaping ,
``verbatim``: https://docs.slack.dev/reference/block-kit/composition-objects/text-object .
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from receiver.notify import escaping
from receiver.notify.content import TRUNCATED, Compose, Markup, Message, fit, join_lines, one_line, truncate
from receiver.notify.slack_actions import MAX_VALUE, Op

MAX_TEXT = 40_000
"""A message's ``text``: Slack truncates past this."""
MAX_MESSAGE = 40_000
"""All the text of a message's blocks together. Slack publishes no such total (``msg_too_long`` has no
documented threshold); holding the blocks to the limit it puts on ``text`` keeps clear of it."""
MAX_ECHO = 400_000
"""Bytes of a message's text and blocks as JSON with non-ASCII escaped (``\\u...``, as Slack writes it).
Slack answers a post or an edit with the message, once or twice: kept under this, the answer stays
within what the HTTP edge reads (``http.MAX_ANSWER_BYTES``, 1 MiB), even for text of emoji alone (an
answer cut short would leave a post that happened looking failed, and posted again)."""
MAX_SECTION = 3_000
MAX_HEADER = 150
MAX_BLOCKS = 50
FIELD = 1_000
"""Most of one untrusted line (services, the latest event) in the message's details, escaped."""
FENCE = "```"

MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300

Block = dict[str, Any]
Payload = dict[str, Any]


def field(text: str, limit: int = FIELD) -> str:
    """Untrusted plain text as one line of ``mrkdwn``: escaped, at most ``limit`` characters. Pure."""
    return cut(escaping.escape(one_line(text, limit), Markup.SLACK), limit)


def safe_end(text: str, end: int) -> int:
    """The last position at or before ``end`` that cuts neither an ``&entity;`` nor a ``<...>`` in two. Pure.

    Raw ``<`` only come from the templates' own links and mentions (untrusted ones are escaped).
    Returns ``end`` when the only safe position would leave nothing.
    """
    amp = text.rfind("&", max(0, end - len("&amp;")), end)
    if amp > 0 and ";" not in text[amp:end]:
        end = amp
    opening = text.rfind("<", 0, end)
    if opening > 0 and ">" not in text[opening:end]:
        end = opening
    return end


def cut(text: str, limit: int) -> str:
    """Escaped ``mrkdwn`` cut to at most ``limit`` characters, whole entities and links, saying it was cut. Pure."""
    if len(text) <= limit:
        return text
    if limit <= len(TRUNCATED):
        return truncate(text, limit)
    return text[: safe_end(text, limit - len(TRUNCATED))] + TRUNCATED


def chunks(text: str, limit: int = MAX_SECTION) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters: at line ends where it can, else at a safe place.

    A code fence open at a cut is closed there and reopened in the next piece. Blank pieces are left
    out (Slack refuses an empty section). Pure.
    """
    room = limit - 2 * len(f"{FENCE}\n")  # a fence closed at the end and reopened at the start
    pieces: list[str] = []
    rest = text
    while len(rest) > room:
        end = rest.rfind("\n", 0, room + 1)
        if end <= 0:
            end = safe_end(rest, room)
        pieces.append(rest[:end])
        rest = rest[end:].removeprefix("\n")
    pieces.append(rest)
    return _balance_fences([p for p in pieces if p.strip()])


def _balance_fences(pieces: Sequence[str]) -> list[str]:
    """Each piece closing the code block it leaves open, the next reopening it. Pure."""
    out: list[str] = []
    open_fence = False
    for piece in pieces:
        text = f"{FENCE}\n{piece}" if open_fence else piece
        if piece.count(FENCE) % 2:
            open_fence = not open_fence
        out.append(f"{text}\n{FENCE}" if open_fence else text)
    return out


def header(title: str) -> Block:
    """The message's header: ``plain_text`` (Slack parses no markup, link or mention in it), one line."""
    text = one_line(title, MAX_HEADER) or "Incident"
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def section(mrkdwn: str) -> Block:
    """A section of ``mrkdwn`` (``verbatim``: Slack links no bare channel name or ``@here`` in it)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(mrkdwn, MAX_SECTION), "verbatim": True}}


def details(message: Message, mention: str) -> str:
    """Severity, status, services, the latest event and the link, with the operator's mention first. Pure."""
    services, latest = field(", ".join(message.services)), field(message.event)
    return join_lines(
        [
            mention,
            f"*Severity:* {field(message.severity, 100) or 'unclassified'}   *Status:* {field(message.status, 100)}",
            f"*Services:* {services}" if services else "",
            f"*Latest:* {latest}" if latest else "",
            escaping.link(message.link, "Open the incident", Markup.SLACK),
        ]
    )


def fallback(message: Message, mention: str, event: bool) -> str:
    """The ``text`` Slack shows in notifications and where blocks cannot be shown. Pure."""
    line, latest = field(message.title, MAX_TEXT), field(message.event, MAX_TEXT)
    if event and latest:
        line = f"{line}: {latest}"
    return cut(f"{mention} {line}".strip(), MAX_TEXT)


def button(op: Op, label: str, value: str, style: str = "", confirm: Block | None = None) -> Block:
    """A button whose click comes back as ``op`` on ``value`` (``slack_actions``). Pure."""
    if len(value) > MAX_VALUE:
        raise ValueError(f"a button's value is at most {MAX_VALUE} characters")
    found: Block = {"type": "button", "action_id": op.value, "text": {"type": "plain_text", "text": label}}
    found["value"] = value
    if style:
        found["style"] = style
    if confirm is not None:
        found["confirm"] = confirm
    return found


def incident_buttons(incident: str, status: str) -> list[Block]:
    """Acknowledge while it is triggered, Resolve until it is resolved. Pure."""
    buttons = [button(Op.ACKNOWLEDGE, "Acknowledge", incident, "primary")] if status == "triggered" else []
    return buttons + ([button(Op.RESOLVE, "Resolve", incident)] if status != "resolved" else [])


def run_buttons(run: str) -> list[Block]:
    """Approve (asking first: it changes the cluster) and Reject a run awaiting approval. Pure."""
    confirm = {
        "title": {"type": "plain_text", "text": one_line(f"Approve run {run}?", MAX_CONFIRM_TITLE)},
        "text": {
            "type": "plain_text",
            "text": one_line(f"Run {run} starts now: its playbook changes the cluster as planned.", MAX_CONFIRM_TEXT),
        },
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    return [button(Op.APPROVE, "Approve", run, "primary", confirm), button(Op.REJECT, "Reject", run, "danger")]


def actions(buttons: list[Block]) -> list[Block]:
    """An actions block holding ``buttons`` (none when there are none). Pure."""
    return [{"type": "actions", "elements": buttons}] if buttons else []


def main_payload(message: Message, mention: str = "", buttons: list[Block] | None = None) -> Payload:
    """The incident's message: header, details, the buttons, then the body. Pure."""
    blocks = [header(message.title), section(details(message, mention)), *actions(buttons or [])]
    blocks += map(section, chunks(message.body))
    return {"text": fallback(message, mention, event=False), "blocks": blocks}


def reply_payload(message: Message, buttons: list[Block] | None = None) -> Payload:
    """A follow-up in the incident's thread: what happened, the buttons, then the body. Pure."""
    event = field(message.event) or field(message.title) or "Update"
    blocks = [section(f"*{event}*"), *actions(buttons or []), *map(section, chunks(message.body))]
    return {"text": fallback(message, "", event=True), "blocks": blocks}


def excess(payload: Payload) -> int:
    """By how much ``payload`` is over the limits on blocks, characters and bytes (0: it fits). Pure."""
    blocks = payload["blocks"]
    characters = sum(len(b["text"]["text"]) for b in blocks if "text" in b)
    text = len(payload["text"])
    echo = len(json.dumps([payload["text"], blocks], ensure_ascii=True, separators=(",", ":")))
    over = max(0, len(blocks) - MAX_BLOCKS) + max(0, characters - MAX_MESSAGE) + max(0, text - MAX_TEXT)
    return over + max(0, echo - MAX_ECHO)


def fitted_main(compose: Compose, mention: str = "", incident: str = "") -> Payload:
    """The richest incident message within the limits: evidence dropped first, then alerts, then the body cut.

    With ``incident`` (the channel is interactive) it carries the buttons its status calls for.
    """
    return fit(compose, Markup.SLACK, lambda m: main_payload(m, mention, _buttons(incident, m)), excess, 0)


def fitted_reply(compose: Compose, run: str = "") -> Payload:
    """The richest follow-up within the limits, degraded as ``fitted_main``; Approve / Reject with ``run``."""
    return fit(compose, Markup.SLACK, lambda m: reply_payload(m, run_buttons(run) if run else []), excess, 0)


def _buttons(incident: str, message: Message) -> list[Block]:
    return incident_buttons(incident, message.status) if incident else []
