"""Reading an incident as a notification tells it: the ``Story`` the templates render, from the store.

Read when a delivery is sent, not when it was written, so a message that waited (a rate limit, a
retry) says what is true when it leaves. Bounded: the last timeline entries, the incident's runs among
the latest, its evidence summaries. Signed acknowledge/resolve links are made here, at the edge, with the
engine's clock: for the person a delivery pages (``person:<name>`` routes), else for its target, so the
timeline says whose link was used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from receiver.incidents.book import Incident
from receiver.incidents.correlation import CorrelationPolicy, service_of
from receiver.incidents.lifecycle import EventKind, TimelineEvent
from receiver.notify.model import Delivery, paged_person
from receiver.notify.story import ActionLink, AlertLine, EventLine, EvidenceLine, Happening, RunLine, Story
from receiver.oncall.links import Signer
from receiver.store import EvidenceStore, IncidentStore, OutboxStore, RunStore

TIMELINE_LINES = 100
"""The last timeline entries read (who acknowledged is looked for among them)."""
RUNS_LOOKED_AT = 200
"""The latest runs whose incidents are looked at for an incident's runs."""


class StoryStore(IncidentStore, RunStore, EvidenceStore, OutboxStore, Protocol):
    """What a story is read from."""


class UnknownStory(LookupError):
    """The delivery's incident is not in the store (it cannot be told)."""


async def read(
    store: StoryStore,
    delivery: Delivery,
    link: str,
    extra: Mapping[str, str] | None = None,
    *,
    signed: tuple[Signer, datetime] | None = None,
    correlation: CorrelationPolicy | None = None,
) -> Story:
    """The story of ``delivery``'s incident, as it is now. UnknownStory, StoreError.

    ``signed``: the signer of action links and the time now (None: the story carries no links).
    ``correlation``: finds each alert's service (None: the default policy's subjects).
    """
    found = await store.incident(delivery.incident, TIMELINE_LINES)
    if found is None:
        raise UnknownStory(delivery.incident)
    incident, timeline = found
    runs = [r for r in await store.runs(limit=RUNS_LOOKED_AT) if r.incident == incident.id]  # newest first
    evidence = [e for e in await store.evidence(incident.id) if e.outcome is not None]
    _, due = await store.notify_state(incident.id)
    happening = Happening(delivery.signal, delivery.text, delivery.actor, delivery.at)
    return replace(
        story_of(incident, timeline, happening, link, correlation),
        next_update_at=due.get(incident.id),
        runs=tuple(RunLine(r.id, r.playbook, r.status.value, r.reason) for r in runs),
        evidence=tuple(EvidenceLine(e.outcome or "", e.summary) for e in evidence),
        extra=dict(extra or {}),
        actions=action_links(*signed, incident, delivery) if signed else (),
    )


def action_links(signer: Signer, now: datetime, incident: Incident, delivery: Delivery) -> tuple[ActionLink, ...]:
    """The signed links ``delivery`` carries for ``incident`` as it is: for the person it pages, else its target.
    Pure."""
    actor = paged_person(delivery.route) or str(delivery.target)
    offered = signer.links(incident.id, incident.status, actor, now)
    return tuple(ActionLink(action.value, action.label, url) for action, url in offered)


def story_of(
    incident: Incident,
    timeline: list[TimelineEvent],
    happening: Happening,
    link: str,
    correlation: CorrelationPolicy | None = None,
) -> Story:
    """The story of an incident as the book or the store has it (no runs, no evidence). Pure.

    Members read from the store carry no name or service (the book works them out when it loads them):
    they are worked out here from the labels, the service with ``correlation``.
    """
    policy = correlation or CorrelationPolicy()
    lifecycle = incident.lifecycle
    acknowledged = [e.actor for e in timeline if e.kind is EventKind.ACKNOWLEDGED]
    alerts = tuple(
        AlertLine(
            m.name or m.labels.get("alertname", m.fingerprint),
            m.labels,
            {},
            m.firing,
            str(m.classification.severity),
            m.role,
            m.fired_at,
            m.service or service_of(m.labels, policy),
        )
        for m in incident.members.values()
    )
    return Story(
        id=incident.id,
        title=incident.title,
        severity=str(incident.severity) if incident.severity else "",
        reasons=incident.classification.reasons if incident.classification else (),
        status=incident.status.value,
        services=tuple(sorted(incident.services)),
        detected_at=lifecycle.detected_at,
        happening=happening,
        link=link,
        acknowledged_at=lifecycle.acknowledged_at,
        acknowledged_by=acknowledged[-1] if acknowledged and lifecycle.acknowledged_at else "",
        mitigated_at=lifecycle.mitigated_at,
        resolved_at=lifecycle.resolved_at,
        alerts=alerts,
        timeline=tuple(EventLine(e.at, e.kind.value, e.text, e.actor) for e in timeline),
        firing=sum(1 for m in incident.members.values() if m.firing),
    )
