"""Planning: which channels hear of what, from the book's real changes on kube-prometheus-stack alerts.

The alerts are the corpus's (tests/corpus: kube-prometheus-stack 88.5.3's rules, the labels they yield);
the incidents are the book's, so the signals are the ones production raises. Pure: no store, no clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receiver.alerts.matchers import parse
from receiver.incidents.book import Book, Changes, IncidentPolicy
from receiver.incidents.lifecycle import IncidentStatus, Signal
from receiver.notify.cadence import Cadence
from receiver.notify.model import Intent, Target
from receiver.notify.planning import Channels, Planner
from receiver.notify.routing import IncidentFacts, Route, default_routes, routed
from tests.corpus import CorpusAlert, alert

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
PAGER = frozenset(
    {Signal.OPENED, Signal.ESCALATED, Signal.SERVICES_JOINED, Signal.REOPENED, Signal.ACKNOWLEDGED, Signal.RESOLVED}
)
KINDS = {"pagerduty": "pagerduty", "slack": "slack", "email": "email", "statuspage": "statuspage"}


def wants(channel: str, signal: Signal) -> bool:
    """The shipped channels' choices, as planning sees them."""
    if channel == "pagerduty":
        return signal in PAGER
    if channel == "email":
        return signal not in (Signal.ALERTS_CHANGED, Signal.SERVICES_JOINED)
    if channel == "statuspage":
        return signal in (Signal.OPENED, Signal.ESCALATED, Signal.RESOLVED, Signal.ACKNOWLEDGED)
    return True


def planner(routes: tuple[Route, ...] | None = None) -> Planner:
    return Planner(routes if routes is not None else default_routes(set(KINDS)), Channels(KINDS, wants), Cadence())


def fire(book: Book, a: CorpusAlert, at: datetime, fingerprint: str | None = None) -> Changes:
    book.fired(fingerprint or a.labels["alertname"] + a.labels.get("pod", ""), a.labels, a.annotations, at)
    return book.settle(at)


def sent(intents: list[Intent]) -> set[tuple[str, Signal]]:
    return {(str(i.target), i.signal) for i in intents}


def test_a_warning_opens_a_sev3_told_to_slack_and_email_with_its_update_due_in_four_hours() -> None:
    book, p = Book(IncidentPolicy()), planner()
    changes = fire(book, alert("KubePodCrashLooping"), T0)
    notices = p.plan(changes, book.incidents, T0)
    [incident] = book.incidents.values()
    assert sent(notices.intents) == {("slack", Signal.OPENED), ("email", Signal.OPENED)}
    assert {(i, str(t)) for i, t, _ in notices.targets} == {(incident.id, "slack"), (incident.id, "email")}
    assert {i.key for i in notices.intents} == {f"{incident.id}/opened/slack", f"{incident.id}/opened/email"}
    assert notices.due == {incident.id: T0 + timedelta(hours=4)}
    assert all(i.route == "default SEV3" and i.kind == KINDS[i.target.channel] for i in notices.intents)


def test_a_critical_is_sev2_and_pages_pagerduty_too() -> None:
    book, p = Book(IncidentPolicy()), planner()
    notices = p.plan(fire(book, alert("KubePersistentVolumeFillingUp", "critical"), T0), book.incidents, T0)
    assert sent(notices.intents) == {("pagerduty", Signal.OPENED), ("slack", Signal.OPENED)}
    assert list(notices.due.values()) == [T0 + timedelta(hours=1)]


def test_more_alerts_joining_are_one_mergeable_refresh_per_channel_that_updates() -> None:
    book, p = Book(IncidentPolicy()), planner()
    p.plan(fire(book, alert("KubePodCrashLooping"), T0), book.incidents, T0)
    later = T0 + timedelta(seconds=30)
    again = alert("KubePodCrashLooping", pod="web-7d4b9c6f5-k8m2p")
    notices = p.plan(fire(book, again, later, "second"), book.incidents, later)
    assert [(str(i.target), i.signal, i.mergeable) for i in notices.intents] == [
        ("slack", Signal.ALERTS_CHANGED, True)
    ]  # email does not want it; pagerduty was never routed


def test_escalation_routes_pagerduty_in_and_it_hears_the_escalation_then_the_end() -> None:
    book, p = Book(IncidentPolicy()), planner()
    p.plan(fire(book, alert("KubePersistentVolumeFillingUp", "warning"), T0), book.incidents, T0)
    [incident] = book.incidents.values()
    assert set(p.targets[incident.id]) == {Target("slack"), Target("email")}
    later = T0 + timedelta(minutes=5)
    worse = alert("KubePersistentVolumeFillingUp", "critical")
    notices = p.plan(fire(book, worse, later, "critical"), book.incidents, later)
    assert incident.severity is not None and incident.severity.name == "SEV2"
    assert ("pagerduty", Signal.ESCALATED) in sent(notices.intents)
    assert ("slack", Signal.ESCALATED) in sent(notices.intents)
    assert notices.due[incident.id] == later + timedelta(hours=1)  # the stricter cadence brings it closer
    ended = T0 + timedelta(hours=1)
    notices = p.plan(
        book.transition(incident.id, IncidentStatus.RESOLVED, ended, "alice", "fixed"), book.incidents, ended
    )
    assert sent(notices.intents) == {
        ("pagerduty", Signal.RESOLVED),
        ("slack", Signal.RESOLVED),
        ("email", Signal.RESOLVED),
    }
    assert notices.due == {incident.id: None}


def test_a_note_by_a_person_resets_the_cadence_and_one_by_the_receiver_does_not() -> None:
    book, p = Book(IncidentPolicy()), planner()
    p.plan(fire(book, alert("KubePodCrashLooping"), T0), book.incidents, T0)
    [incident] = book.incidents.values()
    at = T0 + timedelta(hours=1)
    notices = p.plan(book.note(incident.id, "looking", at, "alice"), book.incidents, at)
    assert notices.due == {incident.id: at + timedelta(hours=4)}
    assert sent(notices.intents) == {("slack", Signal.NOTE), ("email", Signal.NOTE)}
    notices = p.plan(book.note(incident.id, "automatic", at + timedelta(minutes=1), "receiver"), book.incidents, at)
    assert notices.due == {}


def test_an_overdue_update_reminds_the_channels_and_repeats_at_the_cadence() -> None:
    book, p = Book(IncidentPolicy()), planner()
    p.plan(fire(book, alert("KubePodCrashLooping"), T0), book.incidents, T0)
    [incident] = book.incidents.values()
    assert not p.remind(book.incidents, T0 + timedelta(hours=3, minutes=59)).intents
    late = T0 + timedelta(hours=4)
    notices = p.remind(book.incidents, late)
    assert sent(notices.intents) == {("slack", Signal.REMINDER), ("email", Signal.REMINDER)}
    assert notices.due == {incident.id: late + timedelta(hours=4)}
    assert not p.remind(book.incidents, late + timedelta(hours=1)).intents


def test_a_resolved_incident_is_not_routed_anew_and_its_reminders_stop() -> None:
    book, p = Book(IncidentPolicy()), planner()
    p.plan(fire(book, alert("KubePodCrashLooping"), T0), book.incidents, T0)
    [incident] = book.incidents.values()
    p.targets.clear()  # as if read back from a store that had none
    at = T0 + timedelta(minutes=10)
    notices = p.plan(book.transition(incident.id, IncidentStatus.RESOLVED, at, "alice", ""), book.incidents, at)
    assert notices.targets == [] and notices.intents == []


def test_the_notify_step_goes_to_its_channel_or_every_channel_of_the_incident() -> None:
    book, p = Book(IncidentPolicy()), planner()
    p.plan(fire(book, alert("KubePodCrashLooping"), T0), book.incidents, T0)
    [incident] = book.incidents.values()
    changes = book.note(incident.id, "restarting web", T0, "playbook crashloop", signal=None)
    event = changes.events[-1][1]
    assert sent(p.step(incident, "default", event).intents) == {("slack", Signal.STEP), ("email", Signal.STEP)}
    assert sent(p.step(incident, "slack:C999", event).intents) == {("slack:C999", Signal.STEP)}
    assert p.step(incident, "nowhere", event).intents == []


FACTS = IncidentFacts("SEV2", "triggered", frozenset({"shop/web", "shop/api"}), {"namespace": "shop", "team": "x"})


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        (['severity="SEV2"'], True),
        (['severity=~"SEV[12]"'], True),
        (['severity="SEV1"'], False),
        (['service="shop/api"'], True),
        (['service!="shop/api"'], False),
        (['service!~"billing/.*"'], True),
        (['namespace="shop"', 'team="x"'], True),
        (['status="resolved"'], False),
        ([], True),
    ],
)
def test_route_matchers_see_severity_status_services_and_the_opening_alerts_labels(
    matchers: list[str], expected: bool
) -> None:
    route = Route("r", tuple(parse(m) for m in matchers), (Target("slack"),))
    assert bool(routed(FACTS, [route])) is expected


def test_the_first_matching_route_decides_unless_it_continues() -> None:
    sev2 = (parse('severity="SEV2"'),)
    first = Route("first", sev2, (Target("pagerduty"),))
    second = Route("second", (), (Target("slack"), Target("pagerduty")))
    assert routed(FACTS, [first, second]) == [(Target("pagerduty"), "first")]
    proceeding = Route("first", sev2, (Target("pagerduty"),), proceed=True)
    assert routed(FACTS, [proceeding, second]) == [(Target("pagerduty"), "first"), (Target("slack"), "second")]


def test_default_routes_leave_out_channels_that_are_not_configured() -> None:
    routes = {r.name: [str(t) for t in r.targets] for r in default_routes({"slack", "pagerduty"})}
    assert routes == {
        "default SEV1": ["pagerduty", "slack"],
        "default SEV2": ["pagerduty", "slack"],
        "default SEV3": ["slack"],
        "default SEV4": ["slack"],
    }
    assert default_routes(set()) == ()


def test_a_notify_step_goes_only_to_channels_that_take_playbook_messages() -> None:
    book, p = Book(IncidentPolicy()), planner()
    p.plan(fire(book, alert("KubePersistentVolumeFillingUp", "critical"), T0), book.incidents, T0)
    [incident] = book.incidents.values()
    event = book.note(incident.id, "expanding the claim", T0, "playbook pvc", signal=None).events[-1][1]
    assert sent(p.step(incident, "default", event).intents) == {("slack", Signal.STEP)}  # not PagerDuty
    assert p.step(incident, "pagerduty", event).intents == []


def test_an_incident_opening_over_several_services_is_declared_first_then_joins_are_one_mergeable_message() -> None:
    book, p = Book(IncidentPolicy()), planner()
    crash = [alert("KubePodCrashLooping", pod=p) for p in ("web-7d4b9c6f5-x2x9z", "api-5c9d8b7f6-q4w5e")]
    for n, a in enumerate(crash):
        book.fired(f"fp{n}", a.labels, a.annotations, T0)
    notices = p.plan(book.settle(T0), book.incidents, T0)
    assert [i.signal for i in notices.intents if i.target == Target("slack")] == [Signal.OPENED]
    later = T0 + timedelta(minutes=1)
    for n, name in enumerate(("cart-6f7d8c9b5-abcde", "db-0", "queue-1")):
        a = alert("KubePodCrashLooping", pod=name)
        book.fired(f"late{n}", a.labels, a.annotations, later)
    notices = p.plan(book.settle(later), book.incidents, later)
    [joined] = [i for i in notices.intents if i.target == Target("slack") and i.signal is Signal.SERVICES_JOINED]
    assert joined.mergeable  # (five services: the incident is escalated to SEV2 as well, a message of its own)
    assert joined.text.count("joined") == 1 and joined.text.count(",") == 2  # three services, one message
