"""Templates and conditions of playbooks, and the checks a rendered Kubernetes name must pass.

Playbook text is rendered with values that come from alerts: labels are
untrusted input (anyone who can write a Prometheus rule or push an alert
chooses them). So templates run in Jinja2's immutable sandbox (no attribute
of a Python object beyond plain data, no mutation), an undefined value is an
error rather than an empty string (``StrictUndefined``: a missing label never
becomes "delete the pod named ''"), and every rendered Kubernetes name is
checked as the API server would check it (DNS-1123) before any call is made.
A rendered value never reaches a shell: actions call the API with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
MAX_RENDERED = 4096
"""Longest rendered text accepted: a template fed a huge label is refused, not sent."""


class TemplateError(ValueError):
    """A template or condition that does not parse, or cannot be rendered with the values at hand."""


class UnsafeValue(ValueError):
    """A rendered value that is not a valid Kubernetes name (or is not allowed): refused before any call."""


def check_template(text: str) -> None:
    """Parse a template without rendering it. TemplateError names the problem."""
    _template(text)


def check_expression(text: str) -> None:
    """Parse a condition without evaluating it. TemplateError names the problem."""
    _expression(text)


def render(text: str, values: Mapping[str, Any]) -> str:
    """Render a template with ``values`` (``alert``, ``incident``, ``steps``). TemplateError if it cannot."""
    template = _template(text)
    context = values if isinstance(values, dict) else dict(values)
    try:
        # A context of the values alone (``shared``): Jinja's globals (range, lipsum, cycler...) are not copied
        # into each render, which was half of its cost, and are not there for a template to call.
        rendered = template.environment.concat(template.root_render_func(template.new_context(context, shared=True)))
    except jinja2.TemplateError as err:
        raise TemplateError(f"{text!r}: {_why(err)}") from None
    if len(rendered) > MAX_RENDERED:
        raise TemplateError(f"{text!r}: renders to {len(rendered)} characters, more than {MAX_RENDERED}")
    return rendered


def holds(text: str, values: Mapping[str, Any]) -> bool:
    """Whether a condition holds with ``values``. TemplateError if it cannot be evaluated."""
    try:
        return bool(_expression(text)(**values))
    except jinja2.TemplateError as err:
        raise TemplateError(f"{text!r}: {_why(err)}") from None


def dns1123_label(value: str, what: str) -> str:
    """``value`` if it is a DNS-1123 label (a namespace): lowercase letters, digits, '-', at most 63."""
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise UnsafeValue(f"{what} {value!r} is not a valid DNS-1123 label (lowercase letters, digits, '-'; 1-63)")
    return value


def dns1123_subdomain(value: str, what: str) -> str:
    """``value`` if it is a DNS-1123 subdomain (most object names, nodes): like labels, with dots, at most 253."""
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise UnsafeValue(f"{what} {value!r} is not a valid DNS-1123 subdomain (lowercase letters, digits, '-', '.')")
    return value


def env_name(value: str) -> str:
    """``value`` if it is a valid environment variable name for Kubernetes."""
    if not _ENV_NAME.match(value):
        raise UnsafeValue(f"environment variable name {value!r} is not valid")
    return value


def qualified_name(value: str, what: str) -> str:
    """``value`` if it is a valid label or annotation key (``prefix/name``)."""
    if len(value.rpartition("/")[2]) > 63 or len(value) > 317 or not _QUALIFIED_NAME.match(value):
        raise UnsafeValue(f"{what} {value!r} is not a valid key (optional DNS prefix, '/', then a name of 1-63)")
    return value


def label_value(value: str) -> str:
    """``value`` if it is a valid label value."""
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise UnsafeValue(f"label value {value!r} is not valid (letters, digits, '-', '_', '.'; at most 63)")
    return value


@lru_cache(maxsize=1024)
def _template(text: str) -> jinja2.Template:
    try:
        return _ENV.from_string(text)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{text!r}: {err.message}") from None


@lru_cache(maxsize=1024)
def _expression(text: str) -> Any:
    try:
        return _ENV.compile_expression(text, undefined_to_none=False)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{text!r}: {err.message}") from None


def _why(err: jinja2.TemplateError) -> str:
    if isinstance(err, jinja2.UndefinedError):
        return f"{err.message} (a label or value the alert does not have)"
    if isinstance(err, jinja2.exceptions.SecurityError):
        return f"refused by the sandbox: {err}"
    return str(err.message or err)
