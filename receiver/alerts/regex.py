"""Regular expressions as Alertmanager reads them: RE2 syntax, anchored, matched in linear time.

Alertmanager compiles a matcher's value with Go's ``regexp`` as
``^(?:value)$``: RE2 syntax (no backreferences, no lookaround, no possessive
quantifiers) and a cost linear in the input, whatever the pattern. Python's
``re`` backtracks: ``(.*.*)+!`` takes seconds on a short label. Here the
``google-re2`` engine does the matching, so both the language and the cost are
Alertmanager's. This module is the one place that touches the untyped ``re2``
binding. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints

MAX_MEMORY = 2 << 20
"""Bytes one compiled expression may use (program and DFA cache); past it RE2 falls back to its NFA, still linear."""


class InvalidRegex(ValueError):
    """The text is not an RE2 regular expression (the message says why)."""


@dataclass(frozen=True, slots=True)
class Regex:
    """A compiled expression that matches a whole string (anchored at both ends)."""

    text: str
    _compiled: Any = field(repr=False, compare=False)

    def fullmatch(self, value: str) -> bool:
        """Whether the whole of ``value`` matches."""
        return self._compiled.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Grammar:
    """A fixed expression of the daemon's own (not a user's), read in linear time: its groups, or None."""

    _compiled: Any = field(repr=False, compare=False)

    def groups(self, value: str) -> tuple[str | None, ...] | None:
        """The groups of the match at the start of ``value``, or None when it does not match."""
        found = self._compiled.match(value)
        return None if found is None else tuple(found.groups())

    def rewrite(self, value: str, replace: Callable[[Sequence[str]], str]) -> str:
        """``value`` with each match (leftmost first, none overlapping) replaced by ``replace(match)``, where
        ``match[0]`` is the whole match and ``match[i]`` group i ("" when it took no part). Linear in ``value``."""
        return str(self._compiled.sub(lambda found: replace((found.group(), *found.groups(""))), value))


def grammar(text: str) -> Grammar:
    """Compile one of the daemon's own expressions with RE2: a hostile input costs linear time, not cubic."""
    return Grammar(re2.compile(text, _options()))


def compile_anchored(text: str) -> Regex:
    """Compile ``text`` in RE2 syntax; InvalidRegex names what RE2 refused (a backreference, a lookahead...)."""
    try:
        compiled = re2.compile(text, _options())
    except re2.error as err:
        raise InvalidRegex(_reason(err)) from None
    return Regex(text, compiled)


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the caller reports the error, with the matcher it came from
    options.max_mem = MAX_MEMORY
    return options


def _reason(err: Exception) -> str:
    reason = err.args[0] if err.args else "invalid"
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
