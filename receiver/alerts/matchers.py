"""Label matchers in Alertmanager's syntax: ``name="value"``, ``!=``, ``=~``, ``!~``.

Used to filter alerts in the API, and by severity rules, suppression and
playbook triggers. Regular expressions are RE2's, anchored at both ends and
matched in linear time, as in Alertmanager (``receiver.alerts.regex``): a
construct only Python's ``re`` knows (a backreference, a lookahead) is refused
when the matcher is parsed, with the matcher named. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from receiver.alerts.regex import InvalidRegex, Regex, compile_anchored, grammar

Op = Literal["=", "!=", "=~", "!~"]
_SPACE = r"[\t\n\v\f\r\x1c-\x1f\x{85}\p{Z}]"
"""Whitespace as Python's ``str.isspace`` and JSON Schema's ``\\s`` see it (RE2's own ``\\s`` leaves out ``\\v``)."""
_MATCHER = grammar(
    rf'^{_SPACE}*([a-zA-Z_][a-zA-Z0-9_]*){_SPACE}*(=~|!~|!=|=){_SPACE}*(?:"((?:[^"\\]|\\.)*)"|([^"]*?)){_SPACE}*$'
)


class InvalidMatcher(ValueError):
    """The text is not a label matcher."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One condition on one label; a missing label matches as the empty string."""

    name: str
    op: Op
    value: str
    pattern: Regex | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher."""
        actual = labels.get(self.name, "")
        if self.pattern is not None:
            return self.pattern.fullmatch(actual) == (self.op == "=~")
        return (actual == self.value) == (self.op == "=")


def parse(text: str) -> Matcher:
    """Parse one matcher such as ``namespace="prod"`` or ``severity=~"crit.*"``."""
    groups = _MATCHER.groups(text)  # RE2: the text comes from a client (a filter), so the grammar is linear too
    if groups is None:
        raise InvalidMatcher(f'{text!r} is not a matcher like name="value", name!="v", name=~"re" or name!~"re"')
    name, op, quoted, bare = groups
    assert name is not None and op is not None
    value = _unescape(quoted) if quoted is not None else bare or ""
    pattern = None
    if op in ("=~", "!~"):
        try:
            pattern = compile_anchored(value)
        except InvalidRegex as err:
            raise InvalidMatcher(f"{text!r}: invalid regular expression (RE2 syntax): {err}") from None
    return Matcher(name, op, value, pattern)  # type: ignore[arg-type]


def match_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every matcher."""
    return all(m.matches(labels) for m in matchers)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), value)
