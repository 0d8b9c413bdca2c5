"""Where notification templates run: whatever a template does, a value it outputs is escaped for the markup.

Label and annotation values are attacker-controlled, and a template (shipped or a user's) must not be
able to output one unescaped, by any route. Jinja's own autoescape cannot promise that: it knows only
HTML, and as soon as one operand of ``~``, ``join``, ``format``, ``replace`` or ``%`` is
``markupsafe.Markup`` (a macro's output, a filter's) it escapes the others with HTML's escape, which
in Teams markdown leaves ``[Reset password](https://evil.example)`` a live link.

So autoescape is off, and the rule is the other way round: every ``{{ ... }}`` goes through
``finalize``, which escapes it for the markup (``receiver.notify.escaping``) unless it is ``Escaped``,
text marked "already escaped for this markup". Only three things make ``Escaped``: ``finalize`` itself,
the ``link`` filter (``Escaped.of``), and the template's own rendering, which is its text as written
plus values ``finalize`` escaped: a macro's or a ``{% call %}`` block's output (``Sandbox.call``) and a
``{% set %}...{% endset %}`` block without filters (``compile``). Anything computed from them (a
concatenation, a ``join``, a ``format``, a ``replace``, a slice) is a new plain ``str``, escaped
again: a label's text may then show escaped twice, never unescaped.

Two statements write without ``finalize`` in Jinja: ``{% filter %}`` blocks (``compile`` ends their
chain with ``finalize``) and ``{% call %}`` blocks (``Sandbox.call`` finalizes a call given a
``caller``). The HTML filters (``safe``, ``escape``, ``urlize``...) are removed and ``{% autoescape %}``
blocks refused: nothing here un-escapes, and nothing switches to HTML's rules.

Templates run in the immutable sandbox (no Python internals, nothing they could change). Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from receiver.notify.content import Markup
from receiver.notify.escaping import escape, link

HTML_FILTERS = ("safe", "escape", "e", "forceescape", "urlize", "xmlattr", "tojson")
"""Jinja's HTML filters, removed: values are escaped for the channel's markup and nothing un-escapes them."""
_BLOCK = "escaped block"
"""The filter ``compile`` gives a ``{% set %}`` block (a name no template can write: it has a space)."""
_NO_AUTOESCAPE = "no autoescape block: every value is escaped for the channel's markup already"
_FINAL = "finalized block"
"""The filter ``compile`` ends a ``{% filter %}`` block's chain with."""


class Escaped(str):
    """Text already escaped for ``markup``: ``finalize`` outputs it as it is (in that markup only).

    Every ``str`` operation on it (``+``, ``replace``, ``format``, slicing) returns a plain ``str``,
    which ``finalize`` escapes: only what made it (``finalize``, ``link``, the template's own
    rendering) can vouch for its text.
    """

    markup: Markup

    def __new__(cls, text: str, markup: Markup) -> Escaped:
        made = super().__new__(cls, text)
        made.markup = markup
        return made


class Sandbox(ImmutableSandboxedEnvironment):
    """The environment of one markup; ``filters`` are added to Jinja's own (less the HTML ones)."""

    def __init__(self, markup: Markup, filters: Mapping[str, Callable[..., object]]) -> None:
        super().__init__(
            autoescape=False,
            finalize=self.finalize_value,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.markup = markup
        for name in HTML_FILTERS:
            del self.filters[name]
        self.filters.update(filters)
        self.filters["link"] = lambda url, text="": Escaped(link(str(url or ""), str(text), markup), markup)
        self.filters[_BLOCK] = lambda text: Escaped(str(text), markup)
        self.filters[_FINAL] = self.finalize_value

    def finalize_value(self, value: object) -> Escaped:
        """``value`` as the template outputs it: as it is if ``Escaped`` for this markup, else escaped for it."""
        if isinstance(value, Escaped) and value.markup is self.markup:
            return value
        return Escaped(escape("" if value is None else str(value), self.markup), self.markup)

    def call(self, context: Context, callee: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Calls from a template: a macro's output is ``Escaped``; a ``{% call %}`` block's is finalized."""
        result = super().call(context, callee, *args, **kwargs)
        if isinstance(callee, Macro):
            return Escaped(str(result), self.markup)
        if isinstance(kwargs.get("caller"), Macro):  # Jinja writes a call block's result without finalize
            return self.finalize_value(result)
        return result

    def compile_template(self, tree: nodes.Template) -> jinja2.Template:
        """The template of ``tree`` (from ``parse``), its blocks marked or finalized as the module says.

        Raises ``TemplateSyntaxError`` for an ``{% autoescape %}`` block.
        """
        for modifier in tree.find_all(nodes.EvalContextModifier):
            raise jinja2.TemplateSyntaxError(_NO_AUTOESCAPE, modifier.lineno)
        for block in tree.find_all(nodes.AssignBlock):
            if block.filter is None:  # a filter could add a value unescaped (replace): then it is escaped again
                block.filter = nodes.Filter(None, _BLOCK, [], [], None, None, lineno=block.lineno)
        for written in tree.find_all(nodes.FilterBlock):
            written.filter = nodes.Filter(written.filter, _FINAL, [], [], None, None, lineno=written.lineno)
        return self.from_string(tree)
