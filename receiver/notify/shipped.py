"""The notification templates the receiver ships, and the example incident user templates are checked with.

Six templates: ``declared``, ``update`` and ``resolved`` for each audience. They follow the usual
incident-communication practice (Atlassian's incident handbook and Statuspage, PagerDuty's response
guides): an internal message says what is wrong, how bad, where, since when, what fires, who acknowledged it,
what has been done and when the next update is due, with a link to the incident (Slack's living
message is the latest of them, re-rendered at every change, so each says who acknowledged and what
ran last); an external one speaks to
customers in the Investigating / Identified / Monitoring / Resolved words of a status page, names the
affected services and nothing internal (no alert, label, pod, run or evidence: the external context
does not even hold them), and says when the next update comes.

Template text is kept as written in every markup (so it uses no markup of its own: plain lines and
``-`` lists read well in Slack, Teams and a plain email); every ``{{ value }}`` is escaped for the
channel's markup (``receiver.notify.escaping``) and cut with ``short`` where it could be long.
docs/channels/templates.md shows them verbatim. Pure values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from receiver.incidents.lifecycle import Signal
from receiver.notify.story import ActionLink, AlertLine, EventLine, EvidenceLine, Happening, RunLine, Story

INTERNAL_DECLARED = """\
{% set firing = alerts | selectattr("firing") | list %}
{% set why = incident.reasons | join("; ") | short(300) %}
{% if happening.signal == "test" %}
This is a test notification: nothing is wrong.

{% endif %}
Incident declared: {{ incident.title }}
ID: {{ incident.id }}
Severity: {{ incident.severity or "unclassified" }}{{ " (" ~ why ~ ")" if why }}
Status: {{ incident.status }}
{% if incident.acknowledged_by %}
Acknowledged by {{ incident.acknowledged_by }}{{ " at " ~ incident.acknowledged_at | time if incident.acknowledged_at }}
{% endif %}
Services: {{ incident.services | join(", ") or "none identified" }}
Detected: {{ incident.detected_at | time }}
{% for action in incident.actions %}
{{ action.url | link(action.label) }}
{% endfor %}

{% if firing %}
Firing alerts ({{ firing | length }}):
{% for alert in firing[:10] %}
- {{ alert.name | short(100) }} ({{ alert.severity or "unclassified" }}{{ ", " ~ alert.service if alert.service }})
{% if alert.annotations.get("summary") %}
  {{ alert.annotations.summary | short(200) }}
{% endif %}
{% if alert.annotations.get("description") %}
  {{ alert.annotations.description | short(300) }}
{% endif %}
{% if alert.annotations.get("runbook_url") %}
  Runbook: {{ alert.annotations.runbook_url | link }}
{% endif %}
{% endfor %}
{% if firing | length > 10 %}
- and {{ firing | length - 10 }} more
{% endif %}

{% endif %}
{% if evidence %}
Evidence:
{% for item in evidence[:10] %}
- {{ item.outcome }}: {{ item.summary | short(200) }}
{% endfor %}
{% if evidence | length > 10 %}
- and {{ evidence | length - 10 }} more
{% endif %}

{% endif %}
{% if runs %}
Playbook runs:
{% for run in runs[:10] %}
- #{{ run.id }} {{ run.playbook }}: {{ run.status }}{{ " (" ~ run.reason | short(150) ~ ")" if run.reason }}
{% endfor %}

{% endif %}
{% if incident.next_update_at %}
Next update: {{ incident.next_update_at | time }} ({{ incident.next_update_at | ago }})
{% endif %}

{{ incident.link | link }}
"""
"""Internal, when an incident is declared (``opened``, and ``receiver notify test``)."""

INTERNAL_UPDATE = """\
{% set firing = alerts | selectattr("firing") | list %}
{{ happening.headline }}: {{ incident.id }} {{ incident.title }}
{{ happening.text | short(500) }}
{% if happening.actor and happening.actor != "receiver" %}
By {{ happening.actor }} at {{ happening.at | time }}
{% else %}
At {{ happening.at | time }}
{% endif %}
{% if update %}

{{ update | short(2000, line=False) }}
{% endif %}

Status: {{ incident.status }}
{% if incident.acknowledged_by %}
Acknowledged by {{ incident.acknowledged_by }}{{ " at " ~ incident.acknowledged_at | time if incident.acknowledged_at }}
{% endif %}
Severity: {{ incident.severity or "unclassified" }}
Services: {{ incident.services | join(", ") or "none identified" }}
{% for action in incident.actions %}
{{ action.url | link(action.label) }}
{% endfor %}
{% if runs %}
Last playbook run: #{{ runs[0].id }} {{ runs[0].playbook }}: {{ runs[0].status }}\
{{ " (" ~ runs[0].reason | short(150) ~ ")" if runs[0].reason }}
{% endif %}
Firing alerts: {{ incident.firing }}
{% for alert in firing[:10] %}
- {{ alert.name | short(100) }} ({{ alert.severity or "unclassified" }}{{ ", " ~ alert.service if alert.service }})
{% endfor %}
{% if firing | length > 10 %}
- and {{ firing | length - 10 }} more
{% endif %}
{% if incident.next_update_at %}

Next update due: {{ incident.next_update_at | time }} ({{ incident.next_update_at | ago }})
{% endif %}

{{ incident.link | link }}
"""
"""Internal, for everything between declared and resolved (escalated, acknowledged, a status update...)."""

INTERNAL_RESOLVED = """\
Resolved: {{ incident.id }} {{ incident.title }}
Resolved at: {{ (incident.resolved_at or happening.at) | time }}, {{ incident.duration | span }} after it was detected
Severity: {{ incident.severity or "unclassified" }}
Services: {{ incident.services | join(", ") or "none identified" }}
{% if happening.text %}
Why: {{ happening.text | short(300) }}
{% endif %}

{% if runs %}
What was done:
{% for run in runs[:10] %}
- #{{ run.id }} {{ run.playbook }}: {{ run.status }}{{ " (" ~ run.reason | short(150) ~ ")" if run.reason }}
{% endfor %}
{% if runs | length > 10 %}
- and {{ runs | length - 10 }} more
{% endif %}
{% else %}
No playbook ran.
{% endif %}
{% if incident.severity in ("SEV1", "SEV2") %}

A postmortem follows for this {{ incident.severity }} incident.
{% endif %}

{{ incident.link | link }}
"""
"""Internal, when the incident is resolved."""

EXTERNAL_DECLARED = """\
{% if happening.signal == "test" %}
This is a test notification: nothing is wrong.

{% endif %}
We are investigating an issue affecting {{ incident.services | join(", ") or "some of our services" }}.
{% if incident.next_update_at %}
We will provide an update by {{ incident.next_update_at | time }}.
{% else %}
We will provide an update as soon as we know more.
{% endif %}
"""
"""External (a status page), when an incident is declared."""

EXTERNAL_UPDATE = """\
{% set services = incident.services | join(", ") or "some of our services" %}
{% if update %}
{{ update | short(2000, line=False) }}
{% elif incident.phase == "Identified" %}
The cause of the issue affecting {{ services }} has been identified and we are working on a fix.
{% elif incident.phase == "Monitoring" %}
A fix has been implemented for the issue affecting {{ services }} and we are monitoring the results.
{% else %}
We are continuing to investigate the issue affecting {{ services }}.
{% endif %}
{% if incident.next_update_at %}
We will provide an update by {{ incident.next_update_at | time }}.
{% endif %}
"""
"""External, for every change between declared and resolved."""

EXTERNAL_RESOLVED = """\
This incident has been resolved: {{ incident.services | join(", ") or "our services" }} \
{{ "is" if incident.services | length == 1 else "are" }} operating normally again.
The issue lasted from {{ incident.detected_at | time }} to {{ (incident.resolved_at or happening.at) | time }}.
"""
"""External, when the incident is resolved."""

DEFAULTS: dict[tuple[str, str], str] = {
    ("internal", "declared"): INTERNAL_DECLARED,
    ("internal", "update"): INTERNAL_UPDATE,
    ("internal", "resolved"): INTERNAL_RESOLVED,
    ("external", "declared"): EXTERNAL_DECLARED,
    ("external", "update"): EXTERNAL_UPDATE,
    ("external", "resolved"): EXTERNAL_RESOLVED,
}
"""(audience, template name) -> the shipped template."""

_AT = datetime(2026, 12, 1, 3, 20, tzinfo=UTC)


def example_story(signal: Signal) -> Story:
    """An incident with every field filled (a crash-looping pod in ``shop``) as ``signal`` would tell it.

    A user's template is rendered with it for each template name when the configuration is checked, so
    a misspelt variable or an attribute the sandbox refuses fails then, not at the first incident.
    """
    resolved = signal is Signal.RESOLVED
    crash = AlertLine(
        name="KubePodCrashLooping",
        labels={"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "web-7d4b9c6f5-x2x9z"},
        annotations={
            "summary": "Pod is crash looping.",
            "description": "Pod shop/web-7d4b9c6f5-x2x9z (web) is in waiting state (reason: CrashLoopBackOff).",
            "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
        },
        firing=not resolved,
        severity="SEV3",
        role="alert",
        fired_at=_AT,
        service="shop",
    )
    return Story(
        id="INC-20261201-0001",
        title="KubePodCrashLooping in namespace shop",
        severity="SEV2",
        reasons=("KubePodCrashLooping is warning: SEV3", "spans 2 services: SEV2"),
        status="resolved" if resolved else "acknowledged",
        services=("shop", "checkout"),
        detected_at=_AT,
        happening=Happening(signal, "looking into it", "alice", _AT + timedelta(minutes=5)),
        link="https://receiver.example/incidents/INC-20261201-0001",
        acknowledged_at=_AT + timedelta(minutes=5),
        acknowledged_by="alice",
        resolved_at=_AT + timedelta(minutes=40) if resolved else None,
        next_update_at=None if resolved else _AT + timedelta(minutes=35),
        alerts=(crash,),
        runs=(RunLine(1, "restart-crashlooping-pod", "succeeded", "deleted pod web-7d4b9c6f5-x2x9z"),),
        evidence=(EvidenceLine("captured", "pod web-7d4b9c6f5-x2x9z: 12 restarts, last exit code 1"),),
        timeline=(EventLine(_AT, "alert_fired", "KubePodCrashLooping fired", "receiver"),),
        firing=0 if resolved else 1,
        extra={"update": "We rolled back the last deploy of web."},
        actions=() if resolved else (ActionLink("resolve", "Resolve", "https://receiver.example/links/example.token"),),
    )
