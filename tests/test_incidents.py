"""Incident lifecycle tables: allowed and impossible transitions, ids, MTTA and MTTR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receiver.incidents.lifecycle import (
    EventKind,
    IncidentStatus,
    InvalidTransition,
    Lifecycle,
    incident_id,
    transition,
)

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
S = IncidentStatus


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_ids_carry_the_day_and_a_number() -> None:
    assert incident_id(T0, 1) == "INC-20261122-0001"
    assert incident_id(T0, 123) == "INC-20261122-0123"
    with pytest.raises(ValueError, match="start at 1"):
        incident_id(T0, 0)


@pytest.mark.parametrize(
    ("path", "event"),
    [
        ([S.ACKNOWLEDGED, S.MITIGATED, S.RESOLVED], EventKind.RESOLVED),
        ([S.ACKNOWLEDGED, S.RESOLVED], EventKind.RESOLVED),
        ([S.MITIGATED, S.RESOLVED], EventKind.RESOLVED),
        ([S.RESOLVED], EventKind.RESOLVED),
        ([S.RESOLVED, S.TRIGGERED], EventKind.REOPENED),
        ([S.ACKNOWLEDGED], EventKind.ACKNOWLEDGED),
    ],
)
def test_allowed_paths_record_an_event_each(path: list[IncidentStatus], event: EventKind) -> None:
    lifecycle = Lifecycle(S.TRIGGERED, T0)
    events = []
    for minute, status in enumerate(path, start=1):
        lifecycle, recorded = transition(lifecycle, status, at(minute), f"to {status}", actor="alice")
        events.append(recorded)
    assert lifecycle.status is path[-1]
    assert events[-1].kind is event and events[-1].actor == "alice" and events[-1].at == at(len(path))


@pytest.mark.parametrize(
    ("path", "impossible"),
    [
        ([S.RESOLVED], S.RESOLVED),  # resolve twice
        ([S.RESOLVED], S.ACKNOWLEDGED),
        ([S.ACKNOWLEDGED], S.ACKNOWLEDGED),
        ([S.MITIGATED], S.ACKNOWLEDGED),
        ([], S.TRIGGERED),
    ],
)
def test_impossible_transitions_are_refused_and_change_nothing(
    path: list[IncidentStatus], impossible: IncidentStatus
) -> None:
    lifecycle = Lifecycle(S.TRIGGERED, T0)
    for minute, status in enumerate(path, start=1):
        lifecycle, _ = transition(lifecycle, status, at(minute), "ok")
    with pytest.raises(InvalidTransition, match=f"cannot become {impossible}"):
        transition(lifecycle, impossible, at(10), "no")


def test_times_to_acknowledge_and_resolve_and_a_reopen_starts_a_new_episode() -> None:
    lifecycle = Lifecycle(S.TRIGGERED, T0)
    assert (lifecycle.time_to_acknowledge, lifecycle.time_to_resolve) == (None, None)
    lifecycle, _ = transition(lifecycle, S.ACKNOWLEDGED, at(3), "on it")
    lifecycle, _ = transition(lifecycle, S.RESOLVED, at(45), "fixed")
    assert (lifecycle.time_to_acknowledge, lifecycle.time_to_resolve) == (180.0, 2700.0)
    lifecycle, event = transition(lifecycle, S.TRIGGERED, at(50), "fired again")
    assert event.kind is EventKind.REOPENED
    assert (lifecycle.acknowledged_at, lifecycle.resolved_at, lifecycle.detected_at) == (None, None, T0)
