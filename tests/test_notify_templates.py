"""The notification templates: which one tells what, what each detail level drops, and escaping.

Alert labels and annotations are attacker-controlled: the properties below give them arbitrary text
(markup characters, CR/LF, control characters, unicode) and check, for each markup, that what a
message shows decodes back to the value (the decoders are written here, from each markup's rules),
that no value adds a link, emphasis or HTML, and that nothing of an alert reaches the external
audience. User templates: checked at construction, falling back to the shipped one when they fail on a
real incident, and refused by the sandbox when they reach for Python's internals.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from receiver.incidents.lifecycle import Signal
from receiver.notify.channels.slack_blocks import main_payload
from receiver.notify.content import Detail, Markup
from receiver.notify.escaping import escape, link, one_line, strip_controls
from receiver.notify.shipped import DEFAULTS
from receiver.notify.story import RunLine, Story
from receiver.notify.templates import (
    MAX_BODY,
    PUBLIC_SERVICE,
    TITLE_LIMIT,
    TemplateError,
    Templates,
    public_services,
    span,
    template_for,
    time,
)
from tests.notify_support import LINK, T0, alert_line, story

HOSTILE = st.lists(
    st.one_of(
        st.sampled_from([*"<>&*_~`|[]()!#\\{}+-.=\"' \r\n\t:/@", "<!channel>", "](https://evil)", "&amp;", "\n\n    "]),
        st.characters(min_codepoint=0, max_codepoint=0x9F),
        st.characters(),
    ),
    max_size=40,
).map("".join)
"""Text an alert could carry: every markup character, CR/LF, C0/C1 controls, any unicode."""

TEMPLATES = Templates()


def decode(text: str, markup: Markup) -> str:
    """What a person reads: ``text`` in ``markup`` decoded by that markup's own rules."""
    if markup is Markup.SLACK:  # Slack's three entities, nothing else
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    if markup is Markup.HTML:
        return html.unescape(text)
    if markup is Markup.MARKDOWN:  # CommonMark: a backslash before ASCII punctuation is that character
        return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)
    return text


def markdown_tokens(text: str) -> set[str]:
    """Every token type CommonMark (with tables and strikethrough, as chat clients add) reads in ``text``."""
    parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    types: set[str] = set()
    for token in parser.parse(text):
        types.add(token.type)
        types.update(child.type for child in token.children or ())
    return types


FORMATTING = {
    "link_open", "image", "em_open", "strong_open", "s_open", "html_inline", "html_block", "code_inline",
    "fence", "heading_open", "blockquote_open", "bullet_list_open", "ordered_list_open", "table_open", "hr",
}  # fmt: skip
"""What a value must never make in markdown."""


# Which template tells what.

DECLARED = {Signal.OPENED, Signal.TEST}


@pytest.mark.parametrize("signal", list(Signal))
def test_every_signal_has_its_template(signal: Signal) -> None:
    expected = "declared" if signal in DECLARED else "resolved" if signal is Signal.RESOLVED else "update"
    assert template_for(signal) == expected
    assert TEMPLATES.compose(story(signal), "internal", Markup.PLAIN, Detail.FULL).template == expected


@pytest.mark.parametrize(
    ("signal", "audience", "first_line"),
    [
        (Signal.OPENED, "internal", "Incident declared: KubePodCrashLooping in namespace shop"),
        (Signal.TEST, "internal", "This is a test notification: nothing is wrong."),
        (Signal.ACKNOWLEDGED, "internal", "Acknowledged: INC-20261201-0001 KubePodCrashLooping in namespace shop"),
        (Signal.RUN_FAILED, "internal", "Playbook run failed: INC-20261201-0001 KubePodCrashLooping in namespace shop"),
        (Signal.RESOLVED, "internal", "Resolved: INC-20261201-0001 KubePodCrashLooping in namespace shop"),
        (Signal.OPENED, "external", "We are investigating an issue affecting shop/web."),
        (Signal.TEST, "external", "This is a test notification: nothing is wrong."),
        (Signal.ESCALATED, "external", "We are continuing to investigate the issue affecting shop/web."),
        (Signal.RESOLVED, "external", "This incident has been resolved: shop/web is operating normally again."),
    ],
)
def test_each_template_opens_with_what_happened(signal: Signal, audience: str, first_line: str) -> None:
    message = TEMPLATES.compose(story(signal), audience, Markup.PLAIN, Detail.FULL)
    assert message.body.splitlines()[0] == first_line


@pytest.mark.parametrize(
    ("status", "sentence"),
    [
        ("triggered", "We are continuing to investigate the issue affecting shop/web."),
        ("acknowledged", "The cause of the issue affecting shop/web has been identified and we are working on a fix."),
        ("mitigated", "A fix has been implemented for the issue affecting shop/web and we are monitoring the results."),
    ],
)
def test_an_external_update_speaks_in_status_page_phases(status: str, sentence: str) -> None:
    message = TEMPLATES.compose(story(Signal.NOTE, status=status), "external", Markup.PLAIN, Detail.FULL)
    assert message.body == f"{sentence}\nWe will provide an update by 2026-12-01 03:50 UTC."


def test_a_status_update_is_told_to_both_audiences_in_its_own_words() -> None:
    update = story(Signal.STATUS_UPDATE, extra={"update": "We rolled back web & are watching it."})
    for audience in ("internal", "external"):
        body = TEMPLATES.compose(update, audience, Markup.SLACK, Detail.FULL).body
        assert "We rolled back web &amp; are watching it." in body


@pytest.mark.parametrize("markup", list(Markup))
@pytest.mark.parametrize("audience", ["internal", "external"])
def test_a_status_updates_text_is_shown_with_its_lines_in_every_markup(audience: str, markup: Markup) -> None:
    text = "Payments fail for some cards: <b>5%</b> & rising.\nWe rolled back; see [status](https://evil.example)."
    told = story(Signal.STATUS_UPDATE, extra={"update": text})  # as the sender reads a status update's delivery
    message = TEMPLATES.compose(told, audience, markup, Detail.FULL)
    assert message.template == "update"
    assert text in decode(message.body, markup)
    assert escape(text, markup) in message.body
    without = TEMPLATES.compose(replace(told, extra={}), audience, markup, Detail.FULL)
    assert "Payments" not in without.body


def test_the_internal_declared_message_says_what_an_sre_needs() -> None:
    body = TEMPLATES.compose(story(), "internal", Markup.PLAIN, Detail.FULL).body
    assert body == (
        "Incident declared: KubePodCrashLooping in namespace shop\n"
        "ID: INC-20261201-0001\n"
        "Severity: SEV3 (label severity='warning' -> SEV3)\n"
        "Status: triggered\n"
        "Services: shop/web\n"
        "Detected: 2026-12-01 03:20 UTC\n"
        "\n"
        "Firing alerts (1):\n"
        "- KubePodCrashLooping (SEV3, shop/web)\n"
        "  Pod is crash looping.\n"
        '  Pod shop/web-7d4b9c6f5-x2x9z (web) is in waiting state (reason: "CrashLoopBackOff") on cluster .\n'
        "  Runbook: https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping\n"
        "\n"
        "Evidence:\n"
        "- captured: pod shop/web-7d4b9c6f5-x2x9z: 12 restarts, last exit code 1\n"
        "\n"
        "Playbook runs:\n"
        "- #1 restart-crashlooping-pod: succeeded (deleted pod shop/web-7d4b9c6f5-x2x9z)\n"
        "\n"
        "Next update: 2026-12-01 03:50 UTC (in 30 min)\n"
        "\n"
        f"{LINK}"
    )


ACKED = {"status": "acknowledged", "acknowledged_at": T0 + timedelta(minutes=5), "acknowledged_by": "alice"}
RUNS = (
    RunLine(2, "scale-up", "failed", "quota exceeded"),  # newest first, as the sender reads them
    RunLine(1, "restart-crashlooping-pod", "succeeded", "deleted pod shop/web-7d4b9c6f5-x2x9z"),
)


@pytest.mark.parametrize("signal", [Signal.OPENED, Signal.ALERTS_CHANGED, Signal.ESCALATED, Signal.NOTE])
def test_the_living_message_says_who_acknowledged_and_what_ran_last(signal: Signal) -> None:
    body = TEMPLATES.compose(story(signal, runs=RUNS, **ACKED), "internal", Markup.PLAIN, Detail.FULL).body
    assert "\nStatus: acknowledged\nAcknowledged by alice at 2026-12-01 03:25 UTC\n" in body
    if signal is Signal.OPENED:
        assert "Playbook runs:\n- #2 scale-up: failed (quota exceeded)\n- #1 restart-crashlooping-pod" in body
    else:
        assert "\nLast playbook run: #2 scale-up: failed (quota exceeded)\nFiring alerts: 1\n" in body
        assert "restart-crashlooping-pod" not in body
    quiet = TEMPLATES.compose(story(signal, runs=()), "internal", Markup.PLAIN, Detail.FULL).body
    assert "Acknowledged by" not in quiet and "playbook run" not in quiet.lower()
    public = TEMPLATES.compose(story(signal, runs=RUNS, **ACKED), "external", Markup.PLAIN, Detail.FULL)
    assert "alice" not in str(public) and "scale-up" not in str(public)


def test_slacks_main_message_keeps_who_acknowledged_and_the_last_run_after_a_refresh() -> None:
    acked = story(Signal.ALERTS_CHANGED, "alerts changed", "receiver", runs=RUNS, **ACKED)
    shown = str(main_payload(TEMPLATES.compose(acked, "internal", Markup.SLACK, Detail.FULL)))
    assert "Acknowledged by alice" in shown and "Last playbook run: #2 scale-up: failed" in shown


def test_at_most_ten_alerts_are_listed_and_the_rest_counted() -> None:
    alerts = (*(alert_line(name=f"Alert{i:02d}") for i in range(13)), alert_line(name="Gone", firing=False))
    body = TEMPLATES.compose(story(alerts=alerts, firing=13), "internal", Markup.PLAIN, Detail.FULL).body
    assert "Firing alerts (13):" in body
    assert [n for n in re.findall(r"^- (\w+) \(", body, re.M) if n.startswith("Alert")] == [
        f"Alert{i:02d}" for i in range(10)
    ]
    assert "- and 3 more" in body
    assert "Gone" not in body


@pytest.mark.parametrize(
    ("severity", "postmortem"), [("SEV1", True), ("SEV2", True), ("SEV3", False), ("SEV4", False), ("", False)]
)
def test_a_resolved_sev1_or_sev2_promises_a_postmortem(severity: str, postmortem: bool) -> None:
    resolved = story(Signal.RESOLVED, at=T0 + timedelta(minutes=72), status="resolved", severity=severity)
    body = TEMPLATES.compose(
        replace(resolved, resolved_at=T0 + timedelta(minutes=72)), "internal", Markup.PLAIN, Detail.FULL
    ).body
    assert "Resolved at: 2026-12-01 04:32 UTC, 1 h 12 min after it was detected" in body
    assert "- #1 restart-crashlooping-pod: succeeded" in body
    assert ("A postmortem follows" in body) is postmortem


# Detail levels: what a channel may drop to fit.


@pytest.mark.parametrize(
    ("detail", "evidence", "alerts"),
    [(Detail.FULL, True, True), (Detail.NO_EVIDENCE, False, True), (Detail.NO_ALERTS, False, False)],
)
@pytest.mark.parametrize("signal", [Signal.OPENED, Signal.ALERTS_CHANGED])
def test_each_detail_level_drops_evidence_then_alerts(
    signal: Signal, detail: Detail, evidence: bool, alerts: bool
) -> None:
    message = TEMPLATES.compose(story(signal), "internal", Markup.PLAIN, detail)
    if signal is Signal.OPENED:
        assert ("12 restarts" in message.body) is evidence
    assert ("- KubePodCrashLooping (SEV3, shop/web)" in message.body) is alerts
    assert (message.title, message.severity, message.link) == (
        "[SEV3] INC-20261201-0001: KubePodCrashLooping in namespace shop",
        "SEV3",
        LINK,
    )
    assert LINK in message.body


# The message's own fields.


@pytest.mark.parametrize(
    ("signal", "text", "actor", "event"),
    [
        (Signal.ACKNOWLEDGED, "looking into it", "alice", "Acknowledged by alice: looking into it"),
        (
            Signal.ESCALATED,
            "escalated from SEV3 to SEV2: spans 2 services",
            "receiver",
            "Escalated: escalated from SEV3 to SEV2: spans 2 services",
        ),
        (Signal.REMINDER, "", "receiver", "Update overdue"),
        (Signal.NOTE, "line one\r\nline two\x1b[31m", "bob", "Note by bob: line one line two[31m"),
    ],
)
def test_the_event_is_one_plain_line_naming_who(signal: Signal, text: str, actor: str, event: str) -> None:
    assert TEMPLATES.compose(story(signal, text, actor), "internal", Markup.SLACK, Detail.FULL).event == event


def test_title_and_summary_are_one_plain_line_and_bounded() -> None:
    hostile = story(title="Kube<b>Pod</b>\nCrash\x07 " + "x" * 1000, severity="", services=("shop/web", "checkout"))
    message = TEMPLATES.compose(hostile, "internal", Markup.HTML, Detail.FULL)
    assert message.title.startswith("[unclassified] INC-20261201-0001: Kube<b>Pod</b> Crash xxx")
    assert len(message.title) == TITLE_LIMIT and message.title.endswith("…")
    assert message.summary.startswith("[unclassified] Kube<b>Pod</b> Crash xxx")
    assert "\n" not in message.title + message.summary + message.event


# Escaping, value by value.


@pytest.mark.parametrize(
    ("markup", "value", "escaped"),
    [
        (Markup.PLAIN, "a<b>&*c*\r\n\x00\x1b\x9bd\te", "a<b>&*c*\nd\te"),
        (
            Markup.SLACK,
            "<!channel> <https://evil|Click> & *bold* _i_ ~s~",
            "&lt;!channel&gt; &lt;https://evil|Click&gt; &amp; *bold* _i_ ~s~",
        ),
        (Markup.SLACK, "&lt;", "&amp;lt;"),
        (
            Markup.HTML,
            "</td><script>alert('x')</script> & \"q\"",
            "&lt;/td&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34;",
        ),
        (
            Markup.MARKDOWN,
            "[Open](https://evil) *b* _i_ `c` <u> # h",
            r"\[Open\]\(https://evil\) \*b\* \_i\_ \`c\` \<u\> \# h",
        ),
        (
            Markup.MARKDOWN,
            "a\\*b &amp; ~~s~~ | t | 1. x - y + z!",
            r"a\\\*b \&amp; \~\~s\~\~ \| t \| 1\. x \- y \+ z\!",
        ),
    ],
)
def test_escape_table(markup: Markup, value: str, escaped: str) -> None:
    assert escape(value, markup) == escaped


@given(value=HOSTILE)
@settings(max_examples=300)
def test_every_markup_decodes_back_to_the_value_without_its_control_characters(value: str) -> None:
    expected = strip_controls(value)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", expected)
    for markup in Markup:
        escaped = escape(value, markup)
        assert decode(escaped, markup) == expected, markup
        if markup in (Markup.SLACK, Markup.HTML):
            assert "<" not in escaped and ">" not in escaped


@given(value=HOSTILE)
@settings(max_examples=300)
def test_a_markdown_value_makes_no_link_emphasis_or_html(value: str) -> None:
    tokens = markdown_tokens("Summary: " + escape(value, Markup.MARKDOWN))
    assert not tokens & FORMATTING, tokens & FORMATTING


@given(value=HOSTILE)
@settings(max_examples=150)
def test_a_slack_value_cannot_open_a_link_mention_or_command(value: str) -> None:
    escaped = escape(value, Markup.SLACK)
    assert not re.search(r"&(?!amp;|lt;|gt;)", escaped)  # every & starts one of Slack's three entities


# Values through whole templates.


def hostile_story(value: str, **overrides: object) -> Story:
    """The incident with ``value`` in every label and annotation of its alert (no runbook: no links from it)."""
    labels = {key: value for key in ("namespace", "pod", "container", "reason")}
    annotations = {"summary": value, "description": value}
    crash = alert_line(labels=labels, annotations=annotations)
    crash = replace(crash, annotations={k: v for k, v in crash.annotations.items() if k != "runbook_url"})
    return story(alerts=(crash,), **overrides)


@given(value=HOSTILE)
@settings(max_examples=100, deadline=None)
def test_a_hostile_annotation_reads_back_from_every_markup(value: str) -> None:
    shown = one_line(value)[:199]  # the template cuts a summary at 200 (the last character may be the ellipsis)
    for markup in Markup:
        body = TEMPLATES.compose(hostile_story(value, link=""), "internal", markup, Detail.FULL).body
        assert shown in decode(body, markup), markup
        if markup in (Markup.SLACK, Markup.HTML):
            assert "<" not in body, markup  # no link, mention or tag: the story has no link of its own
        if markup is Markup.MARKDOWN:
            assert not markdown_tokens(body) & (FORMATTING - {"bullet_list_open"}), markup  # the template's own "- "


@given(value=HOSTILE)
@settings(max_examples=100, deadline=None)
def test_the_external_audience_hears_nothing_an_alert_says(value: str) -> None:
    marked = "HOSTILE" + value
    hostile = hostile_story(marked, title=f"{marked} in namespace {marked}", reasons=(marked,))
    hostile = replace(hostile, happening=replace(hostile.happening, text=marked, actor=marked), acknowledged_by=marked)
    for signal in (Signal.OPENED, Signal.ESCALATED, Signal.RESOLVED):
        told = replace(hostile, happening=replace(hostile.happening, signal=signal))
        for markup in Markup:
            message = TEMPLATES.compose(told, "external", markup, Detail.FULL)
            shown = " ".join([message.title, message.summary, message.event, message.body, message.link])
            assert "HOSTILE" not in decode(shown, markup)
            assert "INC-" not in shown and "runbook" not in shown


@pytest.mark.parametrize(
    ("services", "public"),
    [
        (("shop/web", "node/worker-1", "job_name/backup"), ("shop/web", "node/worker-1", "job_name/backup")),
        (("shop/<!channel>",), ("a service",)),
        (("[Reset password](https://evil.example)",), ("a service",)),
        (("shop/web", "shop/we b", "shop/wéb", "shop/web\n", "-shop/web", ""), ("shop/web", "a service")),
        (("node/ip-10-0-1-2.ec2.internal", "evil.example"), ("a service",)),
        (("https://evil.example", "shop/*sale*", "shop/web&co"), ("a service",)),
        (("s/" + "x" * 61, "s/" + "x" * 62), ("s/" + "x" * 61, "a service")),  # 63 characters, 64
    ],
)
def test_customers_see_a_service_only_by_a_plain_name(services: tuple[str, ...], public: tuple[str, ...]) -> None:
    assert public_services(services) == public
    told = story(services=services)
    declared = TEMPLATES.compose(told, "external", Markup.PLAIN, Detail.FULL)
    assert declared.services == public
    assert declared.title == f"Issue affecting {', '.join(public)}"
    assert declared.summary == f"Investigating: Issue affecting {', '.join(public)}"
    assert declared.body.startswith(f"We are investigating an issue affecting {', '.join(public)}.\n")
    assert TEMPLATES.compose(told, "internal", Markup.PLAIN, Detail.FULL).services == services


@given(value=HOSTILE)
@settings(max_examples=100, deadline=None)
def test_a_service_named_by_a_label_reaches_customers_only_as_a_plain_name(value: str) -> None:
    service = "HOSTILE" + value
    custom = Templates({"external": {"update": "{{ incident.services | join(' ') }}|{{ incident.title }}"}})
    for templates, signal in ((TEMPLATES, Signal.OPENED), (TEMPLATES, Signal.RESOLVED), (custom, Signal.NOTE)):
        for markup in Markup:
            message = templates.compose(story(signal, services=(service,)), "external", markup, Detail.FULL)
            shown = decode(" ".join([message.title, message.summary, message.event, message.body]), markup)
            if PUBLIC_SERVICE.fullmatch(service):
                assert message.services == (service,) and service in shown
            else:
                assert message.services == ("a service",) and "HOSTILE" not in shown
                assert "Issue affecting a service" in shown


def test_a_custom_external_template_cannot_reach_alerts_either() -> None:
    names = ("incident.title", "incident.reasons", "alerts", "evidence", "runs", "timeline", "happening.text")
    leaky = "|".join(f"{{{{ {name} }}}}" for name in (*names, "happening.actor", "incident.link"))
    templates = Templates({"external": {"declared": leaky}})
    body = templates.compose(story(), "external", Markup.PLAIN, Detail.FULL).body
    assert body == "Issue affecting shop/web|()|()|()|()|()|||"


# Whatever a template does with a value, it outputs it escaped for the channel.

TEMPLATE_LINK = "incident.link | link"
POD = "alerts[0].labels.pod"


def joined(source: str) -> Templates:
    """An internal update template joining the incident's link and the first alert's pod label."""
    return Templates({"internal": {"update": source.replace("LINK", TEMPLATE_LINK).replace("POD", POD)}})


REFERENCE = joined("{{ LINK }} {{ POD }}")
"""The link and the label, each output on its own: each escaped once."""
RENDERED = {
    "macro": "{% macro m(x) %}{{ LINK }} {{ x }}{% endmacro %}{{ m(POD) }}",
    "macro then value": "{% macro l() %}{{ LINK }}{% endmacro %}{{ l() }} {{ POD }}",
    "call block": "{% macro m() %}{{ LINK }} {{ caller() }}{% endmacro %}{% call m() %}{{ POD }}{% endcall %}",
    "set block": "{% set b %}{{ LINK }} {{ POD }}{% endset %}{{ b }}",
    "set": "{% set l = LINK %}{{ l }} {{ POD }}",
    "namespace": "{% set ns = namespace(l=LINK) %}{{ ns.l }} {{ POD }}",
    "string": "{{ LINK | string }} {{ POD | string }}",
    "for": "{% for l in [LINK] %}{{ l }}{% endfor %} {{ POD }}",
}
"""The template's own rendering (macros, blocks) and values passed along unchanged: exactly as ``REFERENCE``."""
COMPUTED = {
    "~": "{{ LINK ~ ' ' ~ POD }}",
    "+": "{{ LINK + ' ' + POD }}",
    "join": "{{ [LINK, POD] | join(' ') }}",
    "list join": "{{ (LINK | list | join) ~ ' ' ~ (POD | list | join) }}",
    "format": "{{ '%s %s' | format(LINK, POD) }}",
    "%": "{{ '%s %s' % (LINK, POD) }}",
    "str.format": "{{ '{} {}'.format(LINK, POD) }}",
    "replace": "{{ (LINK ~ ' X') | replace('X', POD) }}",
    "first": "{{ [LINK ~ ' ' ~ POD] | first }}",
    "cycler": "{{ cycler(LINK ~ ' ' ~ POD).next() }}",
    "macro ~": "{% macro l() %}{{ LINK }}{% endmacro %}{{ l() ~ ' ' ~ POD }}",
    "macro given a concatenation": "{% macro m(x) %}{{ x }}{% endmacro %}{{ m(LINK ~ ' ' ~ POD) }}",
    "set block ~": "{% set b %}{{ LINK }}{% endset %}{{ b ~ ' ' ~ POD }}",
    "string ~": "{{ (LINK | string) ~ ' ' ~ (POD | string) }}",
    "filtered set block": "{% set v = POD %}{% set b | replace('X', v) %}{{ LINK }} X{% endset %}{{ b }}",
    "filter block": "{% filter replace('X', POD) %}{{ LINK }} X{% endfilter %}",
    "call block of a format": "{% call '{} {a}'.format(LINK, a=POD) %}{% endcall %}",
}
"""New text computed from the link and the label: escaped as a whole (the link then shows as text)."""
TRIES = {name: joined(source) for name, source in {**RENDERED, **COMPUTED}.items()}
CANARIES = [
    "[Reset password](https://evil.example)",
    "<!channel> <https://evil.example|Reset password>",
    "</a><script>alert('x')</script>\"",
    "&lt;b&gt; *bold* _i_ `code` ~~s~~\n# heading\n> quote\n- item",
    "\x1b[31m\r\n\x07\x9b",
]


def told_with_pod(value: str) -> Story:
    return story(Signal.NOTE, alerts=(alert_line(labels={"pod": value}),))


def assert_escaped(body: str, value: str, markup: Markup) -> None:
    """``body`` holds ``value`` escaped for ``markup`` (once or more): it makes no link, tag, mention or emphasis."""
    own = link(LINK, "", markup)  # the template's own link, when it is output as rendered
    rest = body.replace(own, "")
    if markup is Markup.PLAIN:
        assert body == REFERENCE.compose(told_with_pod(value), "internal", markup, Detail.FULL).body
    if markup in (Markup.SLACK, Markup.HTML):
        assert not set("<>") & set(rest), rest
        assert not re.search(r"&(?!amp;|lt;|gt;|#3[49];)", rest), rest
    if markup is Markup.HTML:
        assert not set("\"'") & set(rest), rest
    if markup is Markup.MARKDOWN:
        assert not markdown_tokens(rest) & FORMATTING, (rest, markdown_tokens(rest) & FORMATTING)
        assert "[Reset password](https://evil.example)" not in body


@pytest.mark.parametrize("value", CANARIES)
@pytest.mark.parametrize("markup", list(Markup))
@pytest.mark.parametrize("name", list(RENDERED))
def test_a_macro_or_block_renders_a_value_escaped_once(name: str, markup: Markup, value: str) -> None:
    body = TRIES[name].compose(told_with_pod(value), "internal", markup, Detail.FULL).body
    assert body == REFERENCE.compose(told_with_pod(value), "internal", markup, Detail.FULL).body
    assert body.startswith(link(LINK, "", markup) + " ")
    assert_escaped(body, value, markup)


@pytest.mark.parametrize("value", CANARIES)
@pytest.mark.parametrize("markup", list(Markup))
@pytest.mark.parametrize("name", list(COMPUTED))
def test_text_computed_from_a_value_is_escaped_as_a_whole(name: str, markup: Markup, value: str) -> None:
    body = TRIES[name].compose(told_with_pod(value), "internal", markup, Detail.FULL).body
    assert_escaped(body, value, markup)


@given(value=HOSTILE)
@settings(max_examples=40, deadline=None)
def test_no_template_outputs_a_value_unescaped(value: str) -> None:
    told = told_with_pod(value)
    for name, templates in TRIES.items():
        for markup in Markup:
            body = templates.compose(told, "internal", markup, Detail.FULL).body
            assert_escaped(body, value, markup)
            if name in RENDERED:
                assert body == REFERENCE.compose(told, "internal", markup, Detail.FULL).body, (name, markup)


@pytest.mark.parametrize("markup", list(Markup))
def test_the_shipped_templates_links_stay_links(markup: Markup) -> None:
    runbook = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"
    for signal in (Signal.OPENED, Signal.NOTE, Signal.RESOLVED):
        body = TEMPLATES.compose(story(signal), "internal", markup, Detail.FULL).body
        assert body.endswith("\n\n" + link(LINK, "", markup))
        if signal is Signal.OPENED:
            assert f"  Runbook: {link(runbook, '', markup)}\n" in body


# User templates.


def test_a_user_template_replaces_the_shipped_one_and_its_values_are_escaped() -> None:
    templates = Templates({"internal": {"declared": "*{{ incident.id }}* {{ alerts[0].labels.pod }}"}})
    crash = alert_line(labels={"pod": "<!channel>"})
    message = templates.compose(story(alerts=(crash,)), "internal", Markup.SLACK, Detail.FULL)
    assert message.body == "*INC-20261201-0001* &lt;!channel&gt;"
    assert message.template_error == ""


def test_a_macro_is_escaped_once() -> None:
    source = "{% macro item(a) %}- {{ a.name }}: {{ a.annotations.summary }}{% endmacro %}{{ item(alerts[0]) }}"
    templates = Templates({"internal": {"declared": source}})
    crash = alert_line(annotations={"summary": "a & b <c>"})
    body = templates.compose(story(alerts=(crash,)), "internal", Markup.SLACK, Detail.FULL).body
    assert body == "- KubePodCrashLooping: a &amp; b &lt;c&gt;"


def test_a_user_template_failing_on_a_real_incident_falls_back_and_says_so() -> None:
    templates = Templates({"internal": {"update": "First alert: {{ alerts[0].labels.namespace }}"}})
    fine = templates.compose(story(Signal.NOTE), "internal", Markup.PLAIN, Detail.FULL)
    assert fine.body == "First alert: shop"
    failed = templates.compose(story(Signal.NOTE), "internal", Markup.SLACK, Detail.NO_ALERTS)  # no alerts left
    shipped = TEMPLATES.compose(story(Signal.NOTE), "internal", Markup.SLACK, Detail.NO_ALERTS).body
    assert failed.body.startswith(
        shipped + "\n\n(The custom internal update template failed, the shipped one was used: "
    )
    assert failed.template_error == "undefined value: tuple object has no element 0"
    assert failed.template == "update"


def test_customers_are_not_told_that_a_custom_template_failed() -> None:
    templates = Templates({"external": {"update": "{{ update.splitlines()[0] }}"}})
    told = story(Signal.STATUS_UPDATE, extra={"update": "Payments are slow.\nWe are on it."})
    assert templates.compose(told, "external", Markup.PLAIN, Detail.FULL).body == "Payments are slow."
    failed = templates.compose(story(Signal.NOTE), "external", Markup.PLAIN, Detail.FULL)  # no update: no line 0
    assert failed.body == TEMPLATES.compose(story(Signal.NOTE), "external", Markup.PLAIN, Detail.FULL).body
    assert failed.template_error == "undefined value: list object has no element 0"


@pytest.mark.parametrize(
    ("source", "line", "why"),
    [
        ("Incident {{ incident.id }}\n{% if %}", 2, "Expected an expression"),
        ("ok\n\n{{ incidnet.id }}", 3, "unknown variable 'incidnet'"),
        ("{{ incident.titel }}", 1, "has no attribute 'titel'"),
        ("{{ alerts[0].labels.pod | safe }}", 1, "No filter named 'safe'"),
        ("line\n{{ ''.__class__.__mro__ }}", 2, "refused by the sandbox"),
        ("{{ incident.__class__.__init__.__globals__ }}", 1, "refused by the sandbox"),
        ("{{ cycler.__init__.__globals__.os }}", 1, "refused by the sandbox"),
        ("{{ alerts[0].labels.update({'a': 'b'}) }}", 1, "refused by the sandbox"),
        ("{{ 'x'.format.__globals__ }}", 1, "refused by the sandbox"),
        ("{% autoescape true %}\n{{ incident.id }}{% endautoescape %}", 1, "no autoescape block"),
        ("{% set b | replace('X', incident.id) %}X{% endset %}{{ b }}", None, "Jinja cannot compile it"),
    ],
)
def test_a_bad_user_template_is_refused_at_construction_naming_where(source: str, line: int | None, why: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Templates({"internal": {"update": source}})
    assert (caught.value.audience, caught.value.name, caught.value.line) == ("internal", "update", line)
    assert str(caught.value).startswith("the internal update template" + (f", line {line}: " if line else ": "))
    assert why in str(caught.value)


@pytest.mark.parametrize(("audience", "name"), [("public", "declared"), ("internal", "opened")])
def test_an_unknown_template_is_refused(audience: str, name: str) -> None:
    with pytest.raises(TemplateError, match="unknown"):
        Templates({audience: {name: "x"}})


def test_a_sandbox_escape_that_passes_the_check_still_never_runs() -> None:
    source = "{% if incident.firing > 5 %}{{ ''.__class__.__mro__[1].__subclasses__() }}{% endif %}ok"
    templates = Templates({"internal": {"declared": source}})  # the example incident has one firing alert
    assert templates.compose(story(), "internal", Markup.PLAIN, Detail.FULL).body == "ok"
    message = templates.compose(story(firing=6), "internal", Markup.PLAIN, Detail.FULL)
    assert "refused by the sandbox" in message.template_error
    assert "<class" not in message.body and "subclasses" not in message.body.split("(The custom")[0]


def test_a_runaway_user_template_is_cut() -> None:
    templates = Templates({"internal": {"declared": "{% for i in range(50000) %}{{ incident.title }}{% endfor %}"}})
    body = templates.compose(story(), "internal", Markup.PLAIN, Detail.FULL).body
    assert len(body) == MAX_BODY and body.endswith("…")


# Every shipped template, every way.


@pytest.mark.parametrize("markup", list(Markup))
@pytest.mark.parametrize("detail", list(Detail))
@pytest.mark.parametrize("audience", ["internal", "external"])
def test_every_shipped_template_renders_every_signal_tidily(audience: str, detail: Detail, markup: Markup) -> None:
    for signal in Signal:
        bare = story(signal, alerts=(), runs=(), evidence=(), severity="", services=(), next_update_at=None, link="")
        for told in (story(signal), bare):
            message = TEMPLATES.compose(told, audience, markup, detail)
            assert message.body and message.template_error == ""
            assert message.body == message.body.strip() and "\n\n\n" not in message.body
            assert not any(line != line.rstrip() for line in message.body.splitlines())
            assert message == TEMPLATES.compose(told, audience, markup, detail)


def test_the_shipped_templates_pass_their_own_check() -> None:
    overrides: dict[str, dict[str, str]] = {}
    for (audience, name), source in DEFAULTS.items():
        overrides.setdefault(audience, {})[name] = source
    assert Templates(overrides).compose(story(), "internal", Markup.PLAIN, Detail.FULL) == TEMPLATES.compose(
        story(), "internal", Markup.PLAIN, Detail.FULL
    )


# Helpers: times from the story, never the clock.


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (datetime(2026, 12, 1, 3, 20, tzinfo=UTC), "2026-12-01 03:20 UTC"),
        (datetime(2026, 12, 1, 4, 20, tzinfo=timezone(timedelta(hours=1))), "2026-12-01 03:20 UTC"),
        (datetime(2026, 12, 1, 3, 20), "2026-12-01 03:20 UTC"),
        (None, ""),
    ],
)
def test_time(value: datetime | None, shown: str) -> None:
    assert time(value) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (4320, "1 h 12 min"),
        (86400, "1 d"),
        (97200, "1 d 3 h"),
    ],
)
def test_span(seconds: int, shown: str) -> None:
    assert span(timedelta(seconds=seconds)) == shown


@pytest.mark.parametrize(
    ("offset", "shown"),
    [(timedelta(minutes=-12), "12 min ago"), (timedelta(seconds=20), "just now"), (timedelta(minutes=30), "in 30 min")],
)
def test_ago_counts_from_the_happening_not_the_clock(offset: timedelta, shown: str) -> None:
    templates = Templates({"internal": {"update": "{{ incident.next_update_at | ago }}"}})
    told = story(Signal.NOTE, at=T0, next_update_at=T0 + offset)
    assert templates.compose(told, "internal", Markup.PLAIN, Detail.FULL).body == shown


def test_short_cuts_and_flattens() -> None:
    templates = Templates({"internal": {"update": "{{ update | short(10) }}|{{ update | short(30, line=False) }}"}})
    told = story(Signal.STATUS_UPDATE, extra={"update": "line one\nline two"})
    assert templates.compose(told, "internal", Markup.PLAIN, Detail.FULL).body == "line one …|line one\nline two"


@pytest.mark.parametrize(
    ("markup", "url", "text", "shown"),
    [
        (Markup.PLAIN, LINK, "", LINK),
        (Markup.PLAIN, LINK, "Open", f"Open: {LINK}"),
        (Markup.SLACK, LINK, "", f"<{LINK}>"),
        (
            Markup.SLACK,
            "https://x.example/a?b=1&c=<2>|3",
            "<Open>",
            "<https://x.example/a?b=1&amp;c=%3C2%3E%7C3|&lt;Open&gt;>",
        ),
        (
            Markup.HTML,
            'https://x.example/"><script>',
            "",
            '<a href="https://x.example/%22%3E%3Cscript%3E">https://x.example/&#34;&gt;&lt;script&gt;</a>',
        ),
        (Markup.MARKDOWN, "https://x.example/a_(b)", "", r"[https://x\.example/a\_\(b\)](https://x.example/a_%28b%29)"),
        (Markup.MARKDOWN, "javascript:alert(1)", "", r"javascript:alert\(1\)"),
        (Markup.HTML, "javascript:alert(1)", "Open", "Open: javascript:alert(1)"),
        (Markup.SLACK, "https://x.example/a b", "", "https://x.example/a b"),
        (Markup.SLACK, "", "Open", ""),
    ],
)
def test_link(markup: Markup, url: str, text: str, shown: str) -> None:
    assert link(url, text, markup) == shown


# The documentation shows what ships and examples that work.

DOC = (Path(__file__).parent.parent / "docs" / "channels" / "templates.md").read_text()


def test_the_documentation_shows_every_shipped_template_verbatim() -> None:
    for (audience, name), source in DEFAULTS.items():
        assert f"### {audience} {name}\n\n```jinja\n{source}```" in DOC


def test_the_documented_overrides_pass_the_check() -> None:
    example = yaml.safe_load(DOC.split("```yaml\n")[1].split("```")[0])["notify"]
    for overrides in (example["templates"], example["routes"][0]["templates"]):
        message = Templates(overrides).compose(story(), "internal", Markup.SLACK, Detail.FULL)
        assert message.template_error == ""
    body = Templates(example["templates"]).compose(story(), "internal", Markup.SLACK, Detail.FULL).body
    assert body.splitlines()[1] == "- KubePodCrashLooping on web-7d4b9c6f5-x2x9z: Pod is crash looping."
