"""What a notification says: the templates an incident's story is rendered with, per audience and markup.

Three templates per audience (``internal``, ``external``): ``declared`` (signals ``opened`` and
``test``), ``resolved`` (``resolved``) and ``update`` (everything else). The shipped ones
(``receiver.notify.shipped``) can be replaced per audience and name from the configuration.

Templates are Jinja2 in the immutable sandbox of ``receiver.notify.sandbox``: a template sees plain
values (no Python object's internals, nothing it could change), and whatever it does with a value
(``~``, ``join``, ``format``, a macro, a block), what it outputs of it is escaped for the channel's
markup (one environment per markup), while the template's own text is kept as written.

The external audience (a public status page) is told nothing an alert says: no alert, label, title,
reason, evidence, run, timeline entry or person. The services it affects come from labels too, so it
sees each only in a public form (``public_services``): a plain name, or ``a service``.

A user template is checked when it is configured (``Templates(...)`` raises ``TemplateError`` naming
the audience, the name and the line): it must parse, use only the context's variables, and render the
example incident of ``shipped``. One that still fails on a real incident (a label an alert lacks,
``StrictUndefined``) is replaced by the shipped template of the same name, with a line saying so in
an internal message (and ``Message.template_error`` in every one): a notification is never lost to a
template. Pure: times come from the story, never the clock.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.runtime import Context

from receiver.incidents.lifecycle import Signal
from receiver.notify.content import Audience, Detail, Markup, Message
from receiver.notify.escaping import escape, one_line
from receiver.notify.sandbox import Sandbox
from receiver.notify.shipped import DEFAULTS, example_story
from receiver.notify.story import ActionLink, Happening, Story

TemplateName = Literal["declared", "update", "resolved"]
NAMES: tuple[TemplateName, ...] = get_args(TemplateName)
AUDIENCES: tuple[Audience, ...] = get_args(Audience)
CONTEXT = ("incident", "happening", "alerts", "evidence", "runs", "timeline", "update", "markup")
"""The variables a template is given."""
MAX_BODY = 65_536
"""Longest body a template may make; past it the body is cut (each channel then fits its own limit)."""
TITLE_LIMIT = 250
LINE_LIMIT = 500
"""Longest ``summary`` and ``event``."""
SYSTEM_ACTOR = "receiver"
"""The actor of what the receiver does by itself (not named as someone's doing in ``event``)."""
PHASES = {"triggered": "Investigating", "acknowledged": "Identified", "mitigated": "Monitoring", "resolved": "Resolved"}
"""A status page's word for each incident status."""
PUBLIC_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_/-]{0,62}")
"""A service name the external audience may see: ASCII letters, digits, ``_``, ``/`` and ``-``, at most 63
characters, starting with a letter or digit (``shop/web``, ``node/worker-1``). No dot: a dotted name is a
host name (a node's internal FQDN), which clients also turn into a link."""
UNNAMED_SERVICE = "a service"
"""What the external audience is told of a service whose name is not ``PUBLIC_SERVICE``."""
_HEADLINES = {
    Signal.OPENED: "Declared",
    Signal.ESCALATED: "Escalated",
    Signal.DEESCALATED: "De-escalated",
    Signal.SERVICES_JOINED: "Service joined",
    Signal.ALERTS_CHANGED: "Alerts changed",
    Signal.ACKNOWLEDGED: "Acknowledged",
    Signal.MITIGATED: "Mitigated",
    Signal.RESOLVED: "Resolved",
    Signal.REOPENED: "Reopened",
    Signal.NOTE: "Note",
    Signal.RUN_BLOCKED: "Playbook run blocked",
    Signal.RUN_AWAITING_APPROVAL: "Playbook run awaiting approval",
    Signal.RUN_FAILED: "Playbook run failed",
    Signal.STATUS_UPDATE: "Status update",
    Signal.REMINDER: "Update overdue",
    Signal.STEP: "Playbook step",
    Signal.PAGED: "Paged",
    Signal.TEST: "Test",
}
_BLANK_LINES = re.compile(r"\n{3,}")


class TemplateError(ValueError):
    """A user template that does not parse, names an unknown variable, or cannot render the example incident."""

    def __init__(self, audience: str, name: str, line: int | None, why: str) -> None:
        where = f"the {audience} {name} template" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {why}")
        self.audience, self.name, self.line = audience, name, line


@dataclass(frozen=True, slots=True)
class IncidentView:
    """``incident`` in a template. For the external audience: a public title, no reasons, no link."""

    id: str
    title: str
    severity: str
    reasons: tuple[str, ...]
    status: str
    phase: str
    """``Investigating``, ``Identified``, ``Monitoring`` or ``Resolved`` (``PHASES``)."""
    services: tuple[str, ...]
    """For the external audience, in their public form (``public_services``)."""
    detected_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str
    """Who acknowledged it (empty before, and for the external audience)."""
    mitigated_at: datetime | None
    resolved_at: datetime | None
    next_update_at: datetime | None
    duration: timedelta
    """From detection to resolution (to this happening while it is open)."""
    firing: int
    link: str
    actions: tuple[ActionLink, ...] = ()
    """Signed ``Acknowledge``/``Resolve`` links (``action.label``, ``action.url``); empty for the external audience."""


@dataclass(frozen=True, slots=True)
class HappeningView:
    """``happening`` in a template. For the external audience ``text`` and ``actor`` are empty."""

    signal: str
    headline: str
    """The signal in words: ``Acknowledged``, ``Playbook run failed``."""
    text: str
    actor: str
    at: datetime


def template_for(signal: Signal) -> TemplateName:
    """Which template tells of ``signal``. Pure."""
    if signal in (Signal.OPENED, Signal.TEST):
        return "declared"
    if signal is Signal.RESOLVED:
        return "resolved"
    return "update"


class Templates:
    """The six templates, the shipped ones replaced by ``overrides`` (audience -> name -> template text).

    Raises ``TemplateError`` for an override that is unknown, does not parse, names a variable the
    context lacks, or fails on the example incident.
    """

    def __init__(self, overrides: Mapping[str, Mapping[str, str]] | None = None) -> None:
        filters: dict[str, Callable[..., object]] = {"time": time, "ago": ago, "span": span, "short": short}
        self._environments = {markup: Sandbox(markup, filters) for markup in Markup}
        self._custom = _flatten(overrides or {})
        self._compiled: dict[tuple[Markup, str, str, bool], jinja2.Template] = {}
        for (audience, name), source in self._custom.items():
            self._check(audience, name, source)

    def compose(self, story: Story, audience: Audience, markup: Markup, detail: Detail) -> Message:
        """``story`` told to ``audience`` in ``markup`` at ``detail``. Never raises for a user template."""
        name = template_for(story.happening.signal)
        body, error = self._render(audience, name, markup, _context(story, audience == "external", detail, markup))
        return _message(story, audience, name, body, error)

    def _render(self, audience: Audience, name: str, markup: Markup, context: dict[str, Any]) -> tuple[str, str]:
        if (audience, name) in self._custom:
            try:
                return _tidy(self._template(markup, audience, name, True).render(context)), ""
            except Exception as err:  # anything a user's template does wrong: fall back, say so
                error = _why(err)
            body = self._template(markup, audience, name, False).render(context)
            if audience == "internal":  # customers are not told about our templates: the sender logs it
                note = f"(The custom {audience} {name} template failed, the shipped one was used: {error})"
                body += "\n\n" + escape(note, markup)
            return _tidy(body), error
        return _tidy(self._template(markup, audience, name, False).render(context)), ""

    def _template(self, markup: Markup, audience: str, name: str, custom: bool) -> jinja2.Template:
        key = (markup, audience, name, custom)
        if key not in self._compiled:
            source = self._custom[audience, name] if custom else DEFAULTS[audience, name]
            environment = self._environments[markup]
            self._compiled[key] = environment.compile_template(environment.parse(source))
        return self._compiled[key]

    def _check(self, audience: str, name: str, source: str) -> None:
        environment = self._environments[Markup.PLAIN]
        try:
            tree = environment.parse(source)
            template = self._template(Markup.PLAIN, audience, name, True)
        except jinja2.TemplateSyntaxError as err:
            raise TemplateError(audience, name, err.lineno, err.message or "syntax error") from None
        except Exception as err:  # Jinja's compiler failing on what parsed (a set block filtered with a variable)
            raise TemplateError(audience, name, None, f"Jinja cannot compile it: {_why(err)}") from None
        unknown = jinja2.meta.find_undeclared_variables(tree) - set(CONTEXT) - set(environment.globals)
        if unknown:
            first = min(unknown)
            line = next(n.lineno for n in tree.find_all(nodes.Name) if n.name == first)
            raise TemplateError(audience, name, line, f"unknown variable {first!r} (known: {', '.join(CONTEXT)})")
        story = example_story(_EXAMPLE_SIGNAL[name])
        try:
            template.render(_context(story, audience == "external", Detail.FULL, Markup.PLAIN))
        except Exception as err:  # what the sandbox refuses, an undefined attribute, a filter's error
            raise TemplateError(audience, name, _line(err), _why(err)) from None


_EXAMPLE_SIGNAL = {"declared": Signal.OPENED, "update": Signal.ACKNOWLEDGED, "resolved": Signal.RESOLVED}
"""The signal of the example incident a user's template of each name is checked with."""


def _flatten(overrides: Mapping[str, Mapping[str, str]]) -> dict[tuple[str, str], str]:
    flat: dict[tuple[str, str], str] = {}
    for audience, named in overrides.items():
        for name, source in named.items():
            if audience not in AUDIENCES:
                raise TemplateError(audience, name, None, f"unknown audience (known: {', '.join(AUDIENCES)})")
            if name not in NAMES:
                raise TemplateError(audience, name, None, f"unknown template (known: {', '.join(NAMES)})")
            flat[audience, name] = source
    return flat


def _context(story: Story, public: bool, detail: Detail, markup: Markup) -> dict[str, Any]:
    """The variables of a template; ``public`` (the external audience) leaves out all an alert says."""
    happening = story.happening
    return {
        "incident": _incident(story, public),
        "happening": HappeningView(
            signal=happening.signal.value,
            headline=_headline(happening.signal),
            text="" if public else happening.text,
            actor="" if public else happening.actor,
            at=happening.at,
        ),
        "alerts": () if public or detail >= Detail.NO_ALERTS else story.alerts,
        "evidence": () if public or detail >= Detail.NO_EVIDENCE else story.evidence,
        "runs": () if public else story.runs,
        "timeline": () if public else story.timeline,
        "update": story.extra.get("update", ""),
        "markup": markup.value,
    }


def _incident(story: Story, public: bool) -> IncidentView:
    end = story.resolved_at or story.happening.at
    return IncidentView(
        id=story.id,
        title=public_title(story) if public else story.title,
        severity=story.severity,
        reasons=() if public else story.reasons,
        status=story.status,
        phase=PHASES.get(story.status, "Investigating"),
        services=public_services(story.services) if public else story.services,
        detected_at=story.detected_at,
        acknowledged_at=story.acknowledged_at,
        acknowledged_by="" if public else story.acknowledged_by,
        mitigated_at=story.mitigated_at,
        resolved_at=story.resolved_at,
        next_update_at=story.next_update_at,
        duration=max(end - story.detected_at, timedelta(0)),
        firing=story.firing,
        link="" if public else story.link,
        actions=() if public else story.actions,
    )


def _message(story: Story, audience: Audience, name: TemplateName, body: str, error: str) -> Message:
    public = audience == "external"
    phase = PHASES.get(story.status, "Investigating")
    if public:
        title, summary, event = public_title(story), f"{phase}: {public_title(story)}", phase
    else:
        title = f"[{story.severity or 'unclassified'}] {story.id}: {story.title}"
        summary = f"[{story.severity or 'unclassified'}] {story.title} ({story.status}{_services(story)})"
        event = _event(story.happening)
    return Message(
        title=short(title, TITLE_LIMIT),
        severity=story.severity,
        status=story.status,
        link="" if public else story.link,
        summary=short(summary, LINE_LIMIT),
        event=short(event, LINE_LIMIT),
        body=body,
        services=public_services(story.services) if public else story.services,
        audience=audience,
        template=name,
        template_error=error,
        actions=() if public else story.actions,
    )


def public_title(story: Story) -> str:
    """What customers see an incident called: the services it affects (``public_services``), nothing else. Pure."""
    services = public_services(story.services)
    return f"Issue affecting {', '.join(services)}" if services else "Service issue"


def public_services(services: tuple[str, ...]) -> tuple[str, ...]:
    """What the external audience sees of ``services``: each name that is ``PUBLIC_SERVICE``, ``a service`` for
    any other (it came from a label: it could say anything), each once, in order. Pure."""
    return tuple(dict.fromkeys(s if PUBLIC_SERVICE.fullmatch(s) else UNNAMED_SERVICE for s in services))


def _services(story: Story) -> str:
    return f"; services: {', '.join(story.services)}" if story.services else ""


def _event(happening: Happening) -> str:
    by = f" by {happening.actor}" if happening.actor and happening.actor != SYSTEM_ACTOR else ""
    return f"{_headline(happening.signal)}{by}" + (f": {happening.text}" if happening.text else "")


def _headline(signal: Signal) -> str:
    return _HEADLINES.get(signal, signal.value)


def time(value: datetime | None) -> str:
    """``2026-12-01 03:20 UTC`` (a naive time is taken as UTC); empty for None. The ``time`` filter."""
    return "" if value is None else _utc(value).strftime("%Y-%m-%d %H:%M UTC")


def span(value: timedelta | None) -> str:
    """``45 s``, ``12 min``, ``1 h 5 min``, ``2 d 3 h``; empty for None. The ``span`` filter."""
    if value is None:
        return ""
    seconds = max(int(value.total_seconds()), 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return f"{seconds} s"
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h" + (f" {minutes % 60} min" if minutes % 60 else "")
    return f"{days} d" + (f" {hours % 24} h" if hours % 24 else "")


@jinja2.pass_context
def ago(context: Context, value: datetime | None) -> str:
    """``12 min ago`` or ``in 30 min``, from the time of the happening told (not the clock). The ``ago`` filter."""
    if value is None:
        return ""
    delta = _utc(context["happening"].at) - _utc(value)
    if abs(delta) < timedelta(minutes=1):
        return "just now"
    return f"{span(delta)} ago" if delta > timedelta(0) else f"in {span(-delta)}"


def short(value: object, limit: int = 120, line: bool = True) -> str:
    """``value`` as text of at most ``limit`` characters (cut with ``…``), on one line unless ``line=False``.

    The ``short`` filter: ``{{ alert.annotations.description | short(300) }}``.
    """
    text = one_line(str(value)) if line else str(value)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _utc(value: datetime) -> datetime:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def _tidy(body: str) -> str:
    """The rendered body without trailing spaces or runs of blank lines, cut at ``MAX_BODY``."""
    lines = "\n".join(line.rstrip() for line in body.strip().split("\n"))  # only \n: a value's U+2028 stays
    return short(_BLANK_LINES.sub("\n\n", lines), MAX_BODY, line=False)


def _why(err: Exception) -> str:
    if isinstance(err, jinja2.exceptions.SecurityError):
        return short(f"refused by the sandbox: {err}", 200)
    if isinstance(err, jinja2.UndefinedError):
        return short(f"undefined value: {err.message}", 200)
    return short(f"{type(err).__name__}: {err}", 200)


def _line(err: Exception) -> int | None:
    lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__) if frame.filename == "<template>"]
    return lines[-1] if lines else None
