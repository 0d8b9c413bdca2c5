"""Prometheus' annotation templates, rendered as Prometheus renders them, for the subset the rules use.

Prometheus expands a rule's annotations with Go's text/template (missing map keys render empty), ``$labels``
being the expression's output labels and ``$value`` its value. The corpus re-renders annotations when a test
re-values a label, so it needs the same output: this module understands exactly what kube-prometheus-stack's
rules use (``{{ $labels.x }}``, ``{{ $value }}``, ``{{ with ... }}...{{ end }}``, ``{{ . }}``, trim markers,
``printf``, ``humanize``, ``humanizePercentage``) and refuses anything else. ``promtool test rules``
(tests/test_corpus.py) checks its output against Prometheus' own for every corpus entry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

_ACTION = re.compile(r"\{\{(-\s+)?(.*?)(\s+-)?\}\}", re.DOTALL)
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Print:
    pipeline: str


@dataclass(frozen=True)
class _With:
    pipeline: str
    body: tuple[_Node, ...]


_Node = _Text | _Print | _With


def render(template: str, labels: Mapping[str, str], value: float) -> str:
    """``template`` expanded with ``$labels`` and ``$value``, as Prometheus would. Raises ValueError."""
    nodes, rest = _parse(_tokens(template), 0, inside_with=False)
    assert rest is None
    return "".join(_execute(nodes, labels, value, dot=None))


def _tokens(template: str) -> list[str | tuple[str]]:
    """Text pieces (str) and actions (1-tuples), with Go's ``{{-`` / ``-}}`` whitespace trimming applied."""
    out: list[str | tuple[str]] = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        out.append(text)
        out.append((match.group(2).strip(),))
        trim_next = bool(match.group(3))
        pos = match.end()
    tail = template[pos:]
    out.append(tail.lstrip() if trim_next else tail)
    return out


def _parse(tokens: list[str | tuple[str]], start: int, *, inside_with: bool) -> tuple[tuple[_Node, ...], int | None]:
    nodes: list[_Node] = []
    i = start
    while i < len(tokens):
        token = tokens[i]
        if isinstance(token, str):
            if token:
                nodes.append(_Text(token))
            i += 1
            continue
        action = token[0]
        if action == "end":
            if not inside_with:
                raise ValueError("template: {{ end }} without {{ with }}")
            return tuple(nodes), i + 1
        if action.startswith("with "):
            body, after = _parse(tokens, i + 1, inside_with=True)
            if after is None:
                raise ValueError("template: {{ with }} without {{ end }}")
            nodes.append(_With(action.removeprefix("with ").strip(), body))
            i = after
            continue
        if action.split(" ", 1)[0] in {"if", "range", "else", "define", "template", "block"}:
            raise ValueError(f"template: {{{{ {action} }}}} is not supported by the corpus renderer")
        nodes.append(_Print(action))
        i += 1
    if inside_with:
        return tuple(nodes), None
    return tuple(nodes), None


def _execute(nodes: tuple[_Node, ...], labels: Mapping[str, str], value: float, dot: str | None) -> list[str]:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Print):
            out.append(_format(_pipeline(node.pipeline, labels, value, dot)))
        else:
            found = _pipeline(node.pipeline, labels, value, dot)
            if found not in ("", 0.0):
                out += _execute(node.body, labels, value, dot=_format(found))
    return out


def _pipeline(text: str, labels: Mapping[str, str], value: float, dot: str | None) -> str | float:
    stages = [s.strip() for s in text.split("|")]
    result = _command(stages[0], labels, value, dot, piped=None)
    for stage in stages[1:]:
        result = _command(stage, labels, value, dot, piped=result)
    return result


def _command(
    text: str, labels: Mapping[str, str], value: float, dot: str | None, piped: str | float | None
) -> str | float:
    words = _words(text)
    head, args = words[0], [_operand(w, labels, value, dot) for w in words[1:]]
    if piped is not None:
        args.append(piped)
    if head == "printf":
        fmt = args[0]
        if not isinstance(fmt, str):
            raise ValueError("template: printf needs a format string")
        return _printf(fmt, args[1:])
    if head == "humanize":
        return _humanize(_number(args[-1]))
    if head == "humanizePercentage":
        return _go_g(_number(args[-1]) * 100, 4) + "%"
    if args:
        raise ValueError(f"template: function {head!r} is not supported by the corpus renderer")
    return _operand(head, labels, value, dot)


def _words(text: str) -> list[str]:
    words: list[str] = []
    rest = text.strip()
    while rest:
        if rest.startswith('"'):
            match = _STRING.match(rest)
            if match is None:
                raise ValueError(f"template: unterminated string in {text!r}")
            words.append(match.group(0))
            rest = rest[match.end() :].lstrip()
        else:
            word, _, rest = rest.partition(" ")
            words.append(word)
            rest = rest.lstrip()
    return words


def _operand(word: str, labels: Mapping[str, str], value: float, dot: str | None) -> str | float:
    if word.startswith('"'):
        return word[1:-1].encode().decode("unicode_escape")
    if word == "$value":
        return value
    if word.startswith("$labels."):
        return labels.get(word.removeprefix("$labels."), "")
    if word == "." and dot is not None:
        return dot
    raise ValueError(f"template: {word!r} is not supported by the corpus renderer")


def _number(value: str | float) -> float:
    return float(value)


def _format(value: str | float) -> str:
    """What Go's fmt prints for a template value (``%v``): strings as they are, floats shortest."""
    if isinstance(value, str):
        return value
    return _go_g(value, None)


def _printf(fmt: str, args: list[str | float]) -> str:
    """Go's Sprintf for the verbs the rules use (%f, %g, %s with flags and precision)."""
    pieces = re.split(r"(%[-+ #0]*\d*(?:\.\d+)?[a-zA-Z%])", fmt)
    out: list[str] = []
    queue = list(args)
    for piece in pieces:
        if not piece.startswith("%") or piece == "%":
            out.append(piece)
            continue
        if piece == "%%":
            out.append("%")
            continue
        verb = piece[-1]
        arg = queue.pop(0)
        if verb == "g":
            precision = re.search(r"\.(\d+)", piece)
            out.append(_go_g(_number(arg), int(precision.group(1)) if precision else None))
        elif verb in "fe":
            out.append(piece % _number(arg))
        elif verb in "sv":
            out.append(_format(arg))
        elif verb == "d":
            out.append(piece % int(_number(arg)))
        else:
            raise ValueError(f"template: printf verb {piece!r} is not supported by the corpus renderer")
    return "".join(out)


def _go_g(value: float, precision: int | None) -> str:
    """Go's ``%g`` (``precision`` None: the shortest representation, Go's ``%v`` for a float64)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if precision is not None:
        return f"%.{precision}g" % value  # Python's %g picks plain or exponent form, and writes both, as Go's
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    digits = repr(value)  # Python's repr is the shortest round-trip form, as Go's
    mantissa, _, exp_text = digits.partition("e")
    exponent = int(exp_text) if exp_text else 0
    sign = "-" if mantissa.startswith("-") else ""
    mantissa = mantissa.lstrip("-")
    whole, _, frac = mantissa.partition(".")
    frac = frac.rstrip("0")
    all_digits = (whole + frac).lstrip("0")
    # decimal exponent of the first significant digit
    if whole.strip("0"):
        exp10 = len(whole.lstrip("0")) - 1 + exponent
    else:
        exp10 = -(len(frac) - len(frac.lstrip("0")) + 1) + exponent
    significant = all_digits.rstrip("0") or "0"
    if exp10 < -4 or exp10 >= 6:  # strconv's shortest %g: exponent form from 1e+06 on
        body = significant[0] + ("." + significant[1:] if len(significant) > 1 else "")
        return f"{sign}{body}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return sign + _plain(significant, exp10)


def _plain(significant: str, exp10: int) -> str:
    if exp10 < 0:
        return "0." + "0" * (-exp10 - 1) + significant
    if len(significant) <= exp10 + 1:
        return significant + "0" * (exp10 + 1 - len(significant))
    return significant[: exp10 + 1] + "." + significant[exp10 + 1 :]


def _humanize(value: float) -> str:
    """Prometheus' ``humanize``: SI prefixes, four significant digits."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _go_g(value, 4)
    if abs(value) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix = p
            value /= 1000
        return _go_g(value, 4) + prefix
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix = p
        value *= 1000
    return _go_g(value, 4) + prefix
