"""The redactor against hostile text: linear whatever a pod prints, the same redactions as before, lines bounded.

A crash-looping pod's log is text anyone who can make a pod print chooses.
Python's backtracking ``re`` took seconds on 8 KB of ``a-a-a-…`` and nearly a
minute on 64 KB of UUIDs joined by ``-``. No test here is timed: linearity is
by construction (every rule is an RE2 expression, which RE2 matches in time
linear in the text), and inputs of a megabyte, which the quadratic
expressions would take hours on, are redacted in the ordinary run. What the
rules redact is checked against the expressions they replaced (Python's
``re``, lookarounds and all), on generated text.
"""

from __future__ import annotations

import re
import sys
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.alerts.regex import Grammar, grammar
from receiver.evidence import redact as module
from receiver.evidence.content import Bounds, log_view
from receiver.evidence.redact import LINE_LIMIT, MARK, WHITESPACE, redact, redact_line

SECRETS = [  # (a line holding a secret, the secret)
    ("DB_PASSWORD=hunter2x", "hunter2x"),
    ('{"password": "s3cr3t!"}', "s3cr3t!"),
    ("Authorization: Bearer abcdefghijkl.mnop", "abcdefghijkl"),
    ("postgres://app:pa55w0rd@db:5432/x", "pa55w0rd"),
    ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "c2lnbmF0dXJl"),
]


def _uuids(size: int) -> str:
    """``size`` characters of UUIDs joined by ``-`` (a request id chain, say)."""
    ids = (str(uuid.UUID(int=i * 0x9E3779B97F4A7C15)) for i in range(size // 36 + 1))
    return "-".join(ids)[:size]


PATHOLOGICAL = {
    "hyphenated": lambda size: ("a-" * size)[:size],
    "uuids": _uuids,
    "name runs": lambda size: ("x.token-" * size)[:size],  # a secret's name, never followed by = or :
    "schemes": lambda size: ("a+" * size)[:size],  # a URL scheme that never reaches ://
    "jwt starts": lambda size: ("eyJaaaa." * size)[:size],
}


def test_every_rule_is_an_re2_expression() -> None:
    """The guarantee the rest rests on: RE2 matches in linear time, whatever the text (no backtracking)."""
    assert module._RULES and all(isinstance(pattern, Grammar) for pattern, _ in module._RULES)


@pytest.mark.parametrize("shape", sorted(PATHOLOGICAL))
@pytest.mark.parametrize("size", [64 * 1024, 1024 * 1024])
def test_a_pathological_line_is_redacted_and_its_secret_is_not_kept(shape: str, size: int) -> None:
    filler = PATHOLOGICAL[shape](size)
    text = f"{filler[: size // 2]} DB_PASSWORD=hunter2x {filler[size // 2 :]}"
    out = redact(text)
    if shape == "jwt starts":  # eyJaaaa.eyJaaaa.eyJaaaa is a JWT's shape: redacted too
        assert "hunter2x" not in out and "DB_PASSWORD=[REDACTED]" in out
    else:  # nothing else in it looks like a secret: kept as it was
        assert out == text.replace("hunter2x", MARK)


_UNITS = st.sampled_from(
    ["a-", "a.", "0_", "token", "x-", "eyJ", "eyJab.", "a+", "://", ":", "@", "=", '"', "'", "Bearer ", "AKIA", " "]
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_UNITS, min_size=1, max_size=6).map("".join),
    st.integers(1_000, 40_000),
    st.sampled_from(SECRETS),
    st.floats(0, 1),
)
def test_adversarial_text_is_redacted_and_keeps_redacting_known_secrets(
    unit: str, repeat: int, secret: tuple[str, str], where: float
) -> None:
    filler = unit * (repeat // len(unit) + 1)
    at = int(len(filler) * where)
    line, value = secret
    out = redact(f"{filler[:at]} {line} {filler[at:]}")
    assert value not in out and MARK in out


# What the rules replaced, as they were (Python's re, lookaheads and all), read in ASCII (RE2's \b is ASCII's),
# with three changes, each redacting more: a quoted value that runs to the end of the text without its closing
# quote is redacted; so is a value that merely starts with [REDACTED] (password=[REDACTED]hunter2 kept hunter2);
# a URL's password is redacted before Bearer's rule (which took "Bearer postgres" of "Bearer postgres://u:pw@h").
_OLD_NAME = module._SECRET_NAME
_BEFORE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", re.A), MARK),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):(?!\[REDACTED\]@)[^\s/@]+@", re.A), rf"\1:{MARK}@"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{6,}", re.A), rf"\1\2{MARK}"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", re.A), MARK),
    (
        re.compile(
            rf"(?i)(\"?\b{_OLD_NAME}\"?\s*[:=]\s*)"
            r"(\"[^\"]*(?:\"|\Z)|'[^']*(?:'|\Z)|(?!\[REDACTED\](?:[\s,;&\"']|\Z)|(?:bearer|basic)\s)[^\s,;&\"']+)",
            re.A,
        ),
        rf"\1{MARK}",
    ),
)


def _before(text: str) -> str:
    for pattern, replacement in _BEFORE:
        text = pattern.sub(replacement, text)
    return text


_FRAGMENTS = st.sampled_from(
    [
        "password", "DB_PASSWORD", "token", "x-auth-token", "api-key", "secret", "AUTHORIZATION", "pwd",
        "=", ": ", ":", '"', "'", "Bearer ", "basic ", "bearer", "Basic\t", "eyJ", "eyJhbGciOiJIUzI1NiJ9", ".",
        "-", "_", "AKIA", "ASIA", "ABCDEFGHIJKLMNOP", "://", "postgres://", "u:p@", "@", "/", ",", ";", "&",
        " ", "\t", "\n", "\x0b", "[REDACTED]", "abcdef", "123456", "hunter2",
    ]
)  # fmt: skip
_ASCII = "".join(chr(c) for c in range(0x20, 0x7F)) + "\t\n\r\x0b\x0c"  # not \x1c-\x1f: re.A's \s has them not


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(alphabet=_ASCII, max_size=4)), max_size=24).map("".join))
def test_the_rules_redact_what_the_backtracking_expressions_did(text: str) -> None:
    assert redact(text) == _before(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('password: "abc def', "password: [REDACTED]"),  # its closing quote was cut off
        ("api_key: 'abc def\nmore", "api_key: [REDACTED]"),
        ('{"password": "s3cr3t!", "user": "bob"}', '{"password": [REDACTED], "user": "bob"}'),  # as before
        ("Authorization: Bearer abcdefghij", "Authorization: Bearer [REDACTED]"),  # the scheme is kept
        ("Authorization: Bearer", "Authorization: [REDACTED]"),  # no credential after it: as before
        ("authorization=basic\u2003abcdefghij", "authorization=basic\u2003[REDACTED]"),  # any space, as re's \s
        ("token=x\u00a0y", "token=[REDACTED]\u00a0y"),
        ("password=[REDACTED]hunter2", "password=[REDACTED]"),  # kept hunter2 before
        ("Authorization: Bearer postgres://app:pw@db", "Authorization: Bearer [REDACTED]://app:[REDACTED]@db"),
    ],
)
def test_quotes_left_open_and_schemes(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_whitespace_is_pythons() -> None:
    everything = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    spaces = grammar(f"[^{WHITESPACE}]+").rewrite(everything, lambda found: "")
    assert spaces == "".join(c for c in everything if c.isspace())


def test_a_long_line_is_cut_before_it_is_redacted_and_says_so() -> None:
    head = "x" * (LINE_LIMIT - 40) + " DB_PASSWORD=hunter2x "
    line = head + "postgres://app:pa55w0rd@db" + "y" * 100_000
    out = redact_line(line)
    said = f"[line cut: {len(line) - len(head)} characters left out]"
    assert out == f"{'x' * (LINE_LIMIT - 40)} DB_PASSWORD=[REDACTED] {said}"
    assert "pa55" not in out  # the word the cut fell in is left out whole: half a URL is not recognised
    said = f"[line cut: {4 * LINE_LIMIT - 10} characters left out]"
    assert redact_line("a b " * LINE_LIMIT, limit=10) == f"a b a b a {said}"
    assert redact_line("-".join(["a"] * 100_000)) == "[line cut: 199999 characters left out]"
    assert redact_line("DB_PASSWORD=hunter2x") == "DB_PASSWORD=[REDACTED]"  # a short line: redacted, not cut


@pytest.mark.parametrize("shape", ["hyphenated", "uuids"])
def test_a_log_of_pathological_lines_is_viewed_with_each_line_cut(shape: str) -> None:
    line = PATHOLOGICAL[shape](64 * 1024)
    text = f"{line}\nDB_PASSWORD=hunter2x\n{line} token=abc123xyz\n"
    view = log_view(text, Bounds(log_lines=10, log_bytes=1024 * 1024))
    assert view["lines"] == [  # one word longer than a line's limit: left out whole
        f"[line cut: {len(line)} characters left out]",
        "DB_PASSWORD=[REDACTED]",
        f"[line cut: {len(line) + len(' token=abc123xyz')} characters left out]",
    ]
