"""Secrets out of captured text: log lines and event messages pass through ``redact`` before they are stored. Pure.

A log line may print a connection string, an ``Authorization`` header, an
environment dump or a token. What looks like a secret is replaced by
``[REDACTED]``, keeping what it was (the variable's name, the URL's user, the
scheme of the header) so the line still says what happened. It is a filter of
known shapes, not a proof: the README says so. ``redact`` is idempotent.

The text is a crash-looping pod's log, so anyone who can make a pod print can
choose it: every expression is RE2's (``receiver.alerts.regex``), matched in
time linear in the text whatever it holds. Python's backtracking ``re`` took
seconds on 8 KB of ``a-a-a-…`` (the secret name ``[A-Za-z0-9_.-]*token…``
tried from every position of a long run), on the event loop. RE2 has no
lookaround: what a lookahead refused before is decided by the replacement (a
value ``Bearer``/``Basic`` followed by a space is the header's scheme, left
alone). ``redact_line`` also bounds one log line's length before redacting it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from receiver.alerts.regex import Grammar, grammar

MARK = "[REDACTED]"
LINE_LIMIT = 4096
"""Characters of one log line kept (and redacted); the rest is left out, and the line says so."""
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
"""Whitespace as Python's ``str.isspace`` (and ``re``'s ``\\s``) has it; RE2's ``\\s`` is ASCII without ``\\v``."""
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*(?:secret|passw(?:or)?d|passwd|pwd|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|credential|authorization)[A-Za-z0-9_.-]*"
)
_SCHEMES = frozenset({"bearer", "basic"})

Replace = Callable[[Sequence[str]], str]


def _mark(found: Sequence[str]) -> str:
    return MARK


def _header(found: Sequence[str]) -> str:
    return f"{found[1]}{found[2]}{MARK}"


def _url(found: Sequence[str]) -> str:
    return f"{found[1]}:{MARK}@"


def _assigned(found: Sequence[str]) -> str:
    """``NAME=value``: the value redacted, unless it is an ``Authorization`` header's scheme (then its own rule's)."""
    whole, name, _quoted, bare, space = found
    if bare.casefold() in _SCHEMES and space:
        return whole
    return f"{name}{MARK}{space}"


_RULES: tuple[tuple[Grammar, Replace], ...] = (
    # JWTs first: their three base64url parts would otherwise be taken for other things.
    (grammar(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), _mark),
    # scheme://user:password@host (before Bearer, which would take the scheme of "Bearer postgres://u:pw@h")
    (grammar(rf"(?i)\b([a-z][a-z0-9+.-]*://[^{WHITESPACE}:/@]*):[^{WHITESPACE}/@]+@"), _url),
    # Authorization: Bearer abc / Basic abc
    (grammar(rf"(?i)\b(bearer|basic)([{WHITESPACE}]+)[A-Za-z0-9._~+/=-]{{6,}}"), _header),
    # AWS access key ids
    (grammar(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), _mark),
    # NAME=value, NAME: value, "name": "value" where the name looks like a secret's; a quoted value the text
    # ends in before its closing quote (a line that was cut) is redacted to the end
    (
        grammar(
            rf"(?i)(\"?\b{_SECRET_NAME}\"?[{WHITESPACE}]*[:=][{WHITESPACE}]*)"
            rf"(?:(\"[^\"]*(?:\"|$)|'[^']*(?:'|$))|([^{WHITESPACE},;&\"']+)([{WHITESPACE}]?))"
        ),
        _assigned,
    ),
)


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``[REDACTED]``. Pure, idempotent, linear in ``text``."""
    for pattern, replace in _RULES:
        text = pattern.rewrite(text, replace)
    return text


def redact_line(line: str, limit: int = LINE_LIMIT) -> str:
    """One log line redacted; past ``limit`` characters it is cut first and ends with how much was left out.

    The cut keeps the line's start, less the word it fell in: a secret cut in
    half (a JWT without its signature, a URL before its ``@``) would no longer
    be recognised, and its first half would be kept.
    """
    if len(line) <= limit:
        return redact(line)
    end = limit
    if not line[end].isspace():
        while end and not line[end - 1].isspace():
            end -= 1
    kept = redact(line[:end]).rstrip()
    said = f"[line cut: {len(line) - end} characters left out]"
    return f"{kept} {said}" if kept else said
