"""Untrusted text made literal in each channel's markup.

Label and annotation values are chosen by whoever can write a Prometheus rule or push an alert: a
value such as ``<!channel>``, ``<https://evil|Click>``, ``</td><script>`` or ``[Open](https://evil)``
must reach people as those characters, never as a mention, a link, markup or a script. ``escape``
makes a value literal for one ``Markup``; the templates apply it to every value they output, so a
template's own text keeps its formatting while what comes from an alert cannot add any.

Every markup first loses the control characters (C0, DEL and C1) other than newline and tab: a
carriage return, a bell or an escape sequence has no business in a message and some clients act on
them. Then:

- ``PLAIN``: nothing more (a plain-text email, an SMS-like field, a PagerDuty summary);
- ``SLACK``: Slack's rule for ``mrkdwn`` text: ``&`` -> ``&amp;``, ``<`` -> ``&lt;``, ``>`` -> ``&gt;``
  and nothing else (Slack has no escape for ``*``, ``_`` or ``~``: a value can look bold, never link,
  mention or notify);
- ``HTML``: ``markupsafe.escape`` (``& < > " '``);
- ``MARKDOWN``: a backslash before every character that CommonMark or Adaptive Card markdown could
  read as syntax (emphasis, links and images, headings, lists, quotes, tables, code, HTML, entities).

``link`` is the one way a value becomes a link: only an ``http``/``https`` URL does, its visible text is
the URL itself unless the template names one, and what could end the link early is percent-encoded.

Pure.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import markupsafe

from receiver.notify.content import Markup

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters except ``\\t`` (0x09) and ``\\n`` (0x0a)."""
MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()#+-.!|<>~&=")
"""What ``MARKDOWN`` puts a backslash before (all ASCII punctuation, which CommonMark lets be escaped)."""
_MARKDOWN = re.compile("([" + re.escape("".join(sorted(MARKDOWN_SPECIAL))) + "])")
_SLACK = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_URL_SAFE = "/:?#[]@!$&'*+,;=%-._~"
"""What stays as it is in a link's URL: RFC 3986's reserved and unreserved characters, but ( ) (other
characters, such as ``<``, ``>``, ``|``, ``"``, a backslash or a space, are percent-encoded)."""


def escape(text: str, markup: Markup) -> str:
    """``text`` as literal text in ``markup``, its control characters (but newline and tab) removed."""
    clean = strip_controls(text)
    if markup is Markup.SLACK:
        return clean.translate(_SLACK)
    if markup is Markup.HTML:
        return str(markupsafe.escape(clean))
    if markup is Markup.MARKDOWN:
        return _MARKDOWN.sub(r"\\\1", clean)
    return clean


def strip_controls(text: str) -> str:
    """``text`` without control characters other than newline and tab."""
    return _CONTROL.sub("", text)


def one_line(text: str) -> str:
    """``text`` on one line: control characters removed, every run of whitespace (newlines too) one space."""
    return " ".join(strip_controls(text).split())


def link(url: str, text: str, markup: Markup) -> str:
    """A link to ``url`` showing ``text`` (the URL itself when empty), in ``markup``; empty without a URL.

    Only an ``http``/``https`` URL without spaces becomes a link; anything else (``javascript:...``) is
    shown as escaped text, and so is every link in ``PLAIN`` (``text: url``).
    """
    url = one_line(url)
    if not url:
        return ""
    plain = url if not text or text == url else f"{text}: {url}"
    if markup is Markup.PLAIN or not _URL.fullmatch(url):
        return escape(plain, markup)
    target, shown = quote(url, safe=_URL_SAFE), escape(text or url, markup)
    if markup is Markup.SLACK:
        return f"<{escape(target, markup)}|{shown}>" if text else f"<{escape(target, markup)}>"
    if markup is Markup.HTML:
        return f'<a href="{escape(target, markup)}">{shown}</a>'
    return f"[{shown}]({target})"
