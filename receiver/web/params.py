"""What a client sends, checked at the edge: path ids, query numbers and cursors, change bodies.

One strict parser per kind of input, so that every route bounds and reads it
the same way. Numbers are ASCII digits only (``int`` and ``str.isdigit``
admit ``²`` and other Unicode digits) and bounded, so nothing past this module
meets a value SQLite cannot hold. Ids that cannot name anything (an incident
id is ``INC-20261122-0001``, a run id a number, a playbook name a DNS label)
are answered 404 here, without asking the store or the engine. Texts that
travel to the engine are bounded in length and refuse control characters
other than newline and tab. A ``ValueError`` from here names the field; the
handlers answer it with 400.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import orjson
from aiohttp import web

MAX_CURSOR_DIGITS = 18
"""A page cursor (``before``) or a run id has at most this many digits: below SQLite's 2**63."""
MAX_TEXT = 10_000
MAX_ACTOR = 200
INCIDENT_ID = re.compile(r"INC-[0-9]{8}-[0-9]{4,9}")
RUN_ID = re.compile(rf"[0-9]{{1,{MAX_CURSOR_DIGITS}}}")
PLAYBOOK_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_ALLOWED_CONTROLS = frozenset("\n\t")


def whole_number(text: str, name: str, low: int, high: int, rule: str | None = None) -> int:
    """``text`` as an integer from ``low`` to ``high``: ASCII digits only, else ValueError naming ``name``.

    ``rule`` words the range in the error (default `` from {low} to {high}``).
    """
    if text.isascii() and text.isdigit() and len(text) <= len(str(high)) and low <= int(text) <= high:
        return int(text)
    raise ValueError(f"{name}: must be a whole number{rule or f' from {low} to {high}'}")


def int_param(request: web.Request, name: str, default: int, low: int, high: int, rule: str | None = None) -> int:
    """The query parameter ``name`` (``default`` when absent), a whole number from ``low`` to ``high``."""
    text = request.query.get(name)
    return default if text is None else whole_number(text, name, low, high, rule)


def cursor(request: web.Request, name: str = "before") -> int | None:
    """A page cursor (the ``next`` of the page before): ASCII digits, at most MAX_CURSOR_DIGITS of them."""
    text = request.query.get(name)
    if text is None:
        return None
    if RUN_ID.fullmatch(text) is None:
        raise ValueError(f"{name}: must be the 'next' value of a previous page")
    return int(text)


def incident_id(request: web.Request) -> str | None:
    """The ``{id}`` of the path when it has an incident id's form (``INC-20261122-0001``), else None."""
    text = request.match_info["id"]
    return text if INCIDENT_ID.fullmatch(text) else None


def run_id(request: web.Request) -> int | None:
    """The ``{id}`` of the path as a run id when it is one (1 to MAX_CURSOR_DIGITS ASCII digits), else None."""
    text = request.match_info["id"]
    return int(text) if RUN_ID.fullmatch(text) else None


def playbook_name(request: web.Request) -> str | None:
    """The ``{id}`` of the path when it can be a playbook's name (a DNS label), else None."""
    text = request.match_info["id"]
    return text if PLAYBOOK_NAME.fullmatch(text) else None


async def change_body(request: web.Request, field: str, *, required: bool) -> tuple[str, str]:
    """``actor`` and ``field`` from a JSON object body (optional unless ``required``), each checked."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ValueError(f"the body must be a JSON object with {field!r}")
        return "api", ""
    try:
        data: Any = orjson.loads(raw)  # bounded nesting (1024), UTF-8 only
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    text, actor = data.get(field, ""), data.get("actor", "api")
    if not isinstance(text, str) or len(text) > MAX_TEXT or (required and not text.strip()):
        kind = "a non-empty string" if required else "a string"
        raise ValueError(f"{field}: must be {kind} of at most {MAX_TEXT} characters")
    if not isinstance(actor, str) or not actor.strip() or len(actor) > MAX_ACTOR:
        raise ValueError(f"actor: must be a non-empty string of at most {MAX_ACTOR} characters")
    _printable(field, text)
    _printable("actor", actor)
    return actor.strip(), text.strip()


def _printable(name: str, text: str) -> None:
    """ValueError naming ``name`` when ``text`` holds a control character other than newline and tab."""
    if not text.isprintable() and any(_control(c) for c in text):
        raise ValueError(f"{name}: must not contain control characters (other than newline and tab)")


def _control(char: str) -> bool:
    return char not in _ALLOWED_CONTROLS and unicodedata.category(char) == "Cc"
