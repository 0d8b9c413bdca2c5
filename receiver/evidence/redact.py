"""Secrets out of captured text: log lines and event messages pass through ``redact`` before they are stored. Pure.

A log line may print a connection string, an ``Authorization`` header, an
environment dump or a token. What looks like a secret is replaced by
``[REDACTED]``, keeping what it was (the variable's name, the URL's user, the
scheme of the header) so the line still says what happened. It is a filter of
known shapes, not a proof: the README says so. ``redact`` is idempotent.
"""

from __future__ import annotations

import re

MARK = "[REDACTED]"
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*(?:secret|passw(?:or)?d|passwd|pwd|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|credential|authorization)[A-Za-z0-9_.-]*"
)
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # JWTs first: their three base64url parts would otherwise be taken for other things.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MARK),
    # Authorization: Bearer abc / Basic abc
    (re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{6,}"), rf"\1\2{MARK}"),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):(?!\[REDACTED\]@)[^\s/@]+@"), rf"\1:{MARK}@"),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MARK),
    # NAME=value, NAME: value, "name": "value" where the name looks like a secret's
    (
        re.compile(
            rf"(?i)(\"?\b{_SECRET_NAME}\"?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|(?!\[REDACTED\]|(?:bearer|basic)\s)[^\s,;&\"']+)"
        ),
        rf"\1{MARK}",
    ),
)


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``[REDACTED]``. Pure, idempotent."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text
