"""Dedup decisions, as tables of update sequences and their outcomes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.alerts.dedup import AlertState, DedupPolicy, Outcome, Status, decide, expiry_cutoff, is_flapping
from receiver.alerts.wire import Alert
from tests.conftest import T0

POLICY = DedupPolicy(expire_after=timedelta(hours=1), flap_threshold=2, flap_window=timedelta(minutes=10))
F, R = "firing", "resolved"


def alert(status: str, starts: int, ends: int | None = None, fp: str = "0000000000000001") -> Alert:
    """An alert starting ``starts`` minutes after T0 (and ending ``ends`` minutes after)."""
    return Alert(
        status=status,  # type: ignore[arg-type]
        labels={"alertname": "X"},
        annotations={},
        starts_at=T0 + timedelta(minutes=starts),
        ends_at=None if ends is None else T0 + timedelta(minutes=ends),
        generator_url="",
        fingerprint=fp,
    )


def run(updates: list[Alert], step: timedelta = timedelta(seconds=30)) -> list[Outcome]:
    state: AlertState | None = None
    now = T0
    outcomes = []
    for update in updates:
        now += step
        decision = decide(state, update, now, POLICY)
        state = decision.state
        outcomes.append(decision.outcome)
    return outcomes


O = Outcome  # noqa: E741 - keeps the tables readable
CASES = {
    "first firing": ([alert(F, 0)], [O.FIRED]),
    "firing then resolved": ([alert(F, 0), alert(R, 0, 5)], [O.FIRED, O.RESOLVED]),
    "repeat of firing (repeat_interval, HA peer)": (
        [alert(F, 0), alert(F, 0), alert(F, 0)],
        [O.FIRED, O.DUPLICATE, O.DUPLICATE],
    ),
    "repeat of resolved": ([alert(F, 0), alert(R, 0, 5), alert(R, 0, 5)], [O.FIRED, O.RESOLVED, O.DUPLICATE]),
    "resolved never seen firing": ([alert(R, 0, 5)], [O.RESOLVED_UNSEEN]),
    "late firing after resolved (same episode)": (
        [alert(F, 0), alert(R, 0, 5), alert(F, 0)],
        [O.FIRED, O.RESOLVED, O.STALE],
    ),
    "late resolve of an older episode": (
        [alert(F, 0), alert(R, 0, 5), alert(F, 10), alert(R, 0, 5)],
        [O.FIRED, O.RESOLVED, O.FIRED, O.STALE],
    ),
    "fires again with a new startsAt": ([alert(F, 0), alert(R, 0, 5), alert(F, 10)], [O.FIRED, O.RESOLVED, O.FIRED]),
    "new episode after a lost resolve": ([alert(F, 0), alert(F, 10)], [O.FIRED, O.FIRED]),
    "resolved of an episode never seen firing": ([alert(F, 0), alert(R, 10, 15)], [O.FIRED, O.RESOLVED_UNSEEN]),
    "resolved again with another endsAt": (
        [alert(F, 0), alert(R, 0, 5), alert(R, 0, 6)],
        [O.FIRED, O.RESOLVED, O.UPDATED],
    ),
    "resolved unseen then its late firing": ([alert(R, 0, 5), alert(F, 0)], [O.RESOLVED_UNSEEN, O.STALE]),
}


@pytest.mark.parametrize(("updates", "expected"), CASES.values(), ids=CASES.keys())
def test_outcomes(updates: list[Alert], expected: list[Outcome]) -> None:
    assert run(updates) == expected


@pytest.mark.parametrize(("updates", "expected"), CASES.values(), ids=CASES.keys())
def test_news_is_exactly_fired_resolved_and_unseen(updates: list[Alert], expected: list[Outcome]) -> None:
    state = None
    for update, outcome in zip(updates, expected, strict=True):
        decision = decide(state, update, T0, POLICY)
        assert decision.is_news == (outcome in {O.FIRED, O.RESOLVED, O.RESOLVED_UNSEEN})
        state = decision.state


def test_duplicate_changes_nothing_but_last_seen() -> None:
    first = decide(None, alert(F, 0), T0, POLICY).state
    later = T0 + timedelta(minutes=3)
    dup = decide(first, alert(F, 0), later, POLICY)
    assert dup.outcome is O.DUPLICATE
    assert dup.state == replace(first, last_seen=later)


@pytest.mark.parametrize(
    ("after", "moves"),
    [(timedelta(seconds=1), False), (timedelta(seconds=59), False), (timedelta(seconds=60), True)],
)
def test_a_duplicate_moves_last_seen_only_past_the_resolution(after: timedelta, moves: bool) -> None:
    first = decide(None, alert(F, 0), T0, POLICY).state
    dup = decide(first, alert(F, 0), T0 + after, POLICY)
    assert dup.outcome is O.DUPLICATE
    assert (dup.state is first) is not moves  # the very same state: the store writes nothing
    assert dup.state.last_seen == (T0 + after if moves else T0)


def test_stale_update_leaves_state_untouched() -> None:
    state = decide(None, alert(F, 10), T0, POLICY).state
    stale = decide(state, alert(R, 0, 5), T0 + timedelta(minutes=1), POLICY)
    assert stale.outcome is O.STALE
    assert stale.state is state


def test_first_seen_is_kept_and_last_changed_moves() -> None:
    state = decide(None, alert(F, 0), T0, POLICY).state
    resolved = decide(state, alert(R, 0, 5), T0 + timedelta(minutes=5), POLICY).state
    assert resolved.first_seen == T0
    assert resolved.last_changed == T0 + timedelta(minutes=5)
    assert resolved.status is Status.RESOLVED


def _flip(state: AlertState | None, n: int, now: datetime) -> tuple[AlertState, bool]:
    """Fire (even n) or resolve (odd n) episode n // 2."""
    episode = n // 2 * 10
    update = alert(F, episode) if n % 2 == 0 else alert(R, episode, episode + 1)
    decision = decide(state, update, now, POLICY)
    return decision.state, decision.became_flapping


def test_flapping_after_more_than_threshold_flips_within_window() -> None:
    state, became = _flip(None, 0, T0)
    flags = []
    for n in range(1, 5):
        state, became = _flip(state, n, T0 + timedelta(minutes=n))
        flags.append((len(state.flips), is_flapping(state, T0 + timedelta(minutes=n), POLICY), became))
    # flips: 1, 2 are within the threshold of 2; the third flip makes it flap, once
    assert flags == [(1, False, False), (2, False, False), (3, True, True), (3, True, False)]


def test_flapping_ends_when_flips_leave_the_window() -> None:
    state, _ = _flip(None, 0, T0)
    for n in range(1, 4):
        state, _ = _flip(state, n, T0 + timedelta(minutes=n))
    assert is_flapping(state, T0 + timedelta(minutes=4), POLICY)
    assert not is_flapping(state, T0 + timedelta(minutes=12), POLICY)


def test_flips_spread_over_more_than_the_window_never_flap() -> None:
    state, _ = _flip(None, 0, T0)
    for n in range(1, 12):
        state, became = _flip(state, n, T0 + timedelta(minutes=6 * n))
        assert not became
        assert len(state.flips) <= POLICY.flap_threshold + 1


def test_expired_alert_revives_when_alertmanager_repeats_it() -> None:
    state = replace(decide(None, alert(F, 0), T0, POLICY).state, status=Status.EXPIRED)
    revived = decide(state, alert(F, 0), T0 + timedelta(hours=2), POLICY)
    assert revived.outcome is O.FIRED
    assert revived.state.status is Status.FIRING
    assert revived.state.flips == ()  # expired -> firing is no flip: it never stopped firing


def test_expired_alert_can_still_resolve() -> None:
    state = replace(decide(None, alert(F, 0), T0, POLICY).state, status=Status.EXPIRED)
    assert decide(state, alert(R, 0, 90), T0 + timedelta(hours=2), POLICY).outcome is O.RESOLVED


def test_expiry_cutoff() -> None:
    assert expiry_cutoff(T0, POLICY) == T0 - timedelta(hours=1)


# Properties: what HA peers and retries do to a sequence of updates changes nothing.

_EPISODE_UPDATES = st.lists(st.tuples(st.sampled_from([F, R]), st.integers(0, 5)), min_size=1, max_size=12)


def _updates(steps: list[tuple[str, int]]) -> list[Alert]:
    return [alert(status, ep * 10, ep * 10 + 5 if status == R else None) for status, ep in steps]


def _news(updates: list[Alert]) -> list[tuple[Outcome, str]]:
    state: AlertState | None = None
    news = []
    for i, update in enumerate(updates):
        decision = decide(state, update, T0 + timedelta(seconds=i), POLICY)
        state = decision.state
        if decision.is_news:
            news.append((decision.outcome, update.status + str(update.starts_at)))
    return news


@given(_EPISODE_UPDATES, st.data())
def test_redelivering_any_update_later_adds_no_news(steps: list[tuple[str, int]], data: st.DataObject) -> None:
    """An HA peer or a retry delivers a copy of an update, at any later point."""
    updates = _updates(steps)
    redelivered = list(updates)
    for _ in range(data.draw(st.integers(1, 6))):
        original = data.draw(st.integers(0, len(updates) - 1))
        first = redelivered.index(updates[original])
        redelivered.insert(data.draw(st.integers(first + 1, len(redelivered))), updates[original])
    assert _news(redelivered) == _news(updates)


@given(_EPISODE_UPDATES)
def test_news_never_goes_back_in_time(steps: list[tuple[str, int]]) -> None:
    starts = [when for _, when in _news(_updates(steps))]
    episodes = [s.removeprefix("firing").removeprefix("resolved") for s in starts]
    assert episodes == sorted(episodes)
