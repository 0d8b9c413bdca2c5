"""Which alerts of a processed batch ask for evidence: those that open an incident, those a playbook acts on. Pure.

The processor calls ``requests_for`` with what the incident book opened and
the runs the news triggered; the requests go into the batch's transaction,
so a crash never loses one and a replay never adds one twice (the store
keeps one per incident, alert and episode). A reopened incident asks for
nothing new by itself; an incident opened by many alerts at once asks for
its first ``per_incident``. An alert that names no object (no pod, workload, node,
claim or HPA) asks for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from receiver.evidence.records import EvidenceRequest
from receiver.evidence.subject import subject_of
from receiver.incidents.book import Incident
from receiver.incidents.subject import SubjectPolicy
from receiver.playbooks.plan import AlertFacts
from receiver.playbooks.runs import RunIntent

OPENED = "incident opened"


def requests_for(
    opened: Iterable[Incident],
    runs: Sequence[RunIntent],
    news: Mapping[str, AlertFacts],
    now: datetime,
    per_incident: int,
    policy: SubjectPolicy,
) -> list[EvidenceRequest]:
    """Evidence requests: the first alerts of each opened incident, then every run's alert. Pure."""
    found: dict[tuple[str, str, datetime], EvidenceRequest] = {}
    for incident in opened:
        alerts = [m for m in incident.members.values() if m.role == "alert" and m.fingerprint in news]
        for member in alerts[:per_incident]:
            facts = news[member.fingerprint]
            if subject_of(facts.labels, policy).empty:
                continue
            request = EvidenceRequest(incident.id, facts.fingerprint, facts.starts_at, OPENED, facts.labels, now)
            found.setdefault((incident.id, facts.fingerprint, facts.starts_at), request)
    for run in runs:
        if run.incident is None:
            continue
        alert = run.alert
        if subject_of(alert.labels, policy).empty:
            continue
        reason = f"playbook {run.playbook} triggered"
        request = EvidenceRequest(run.incident, alert.fingerprint, alert.starts_at, reason, alert.labels, now)
        found.setdefault((run.incident, alert.fingerprint, alert.starts_at), request)
    return list(found.values())
