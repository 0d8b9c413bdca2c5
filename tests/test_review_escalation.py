"""Review of issue #15 (escalation and on-call): reproductions of what the review found.

Each test states what the issue asks and fails on main where main does not do it (see the review report).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from receiver.cli.oncall import coverage_warnings
from receiver.config import Settings
from receiver.notify.escalation import Ladders
from receiver.notify.pagerduty_webhooks import actor as pagerduty_actor
from receiver.oncall.policies import Policy, Ref, RefKind, Roster, Step
from tests.test_escalation import KINDS, PEOPLE, World, processor, world  # noqa: F401 (the fixture)
from tests.test_escalation_cli import SETTINGS


async def test_an_acknowledgement_in_pagerduty_by_a_configured_person_is_counted_as_that_person(
    world: World,  # noqa: F811
) -> None:
    """Metrics: time to acknowledge "by who acknowledged through which path". A PagerDuty webhook acts as
    ``pagerduty: <person>`` for a configured ``pagerduty_user``; the metric must say the person, not ``other``."""
    incident = await world.open("web-7d4b9c6f5-x2x9z")
    await world.at(0)
    world.clock.at += timedelta(seconds=30)
    who = pagerduty_actor({"id": "PBOB001", "summary": "Bob"}, {"PBOB001": "bob"})
    assert who == "pagerduty: bob"
    await world.processor.acknowledge(incident, who, "acknowledged in PagerDuty")
    acks = [a for t in world.tallies for a in t.acknowledgements]
    assert [(a[2], a[3]) for a in acks] == [("pagerduty", "bob")]


def test_config_check_warns_of_a_policy_step_that_reaches_nobody() -> None:
    """The issue's coverage check reports "a step of a policy that resolves to nobody", and README (Escalation)
    says config check prints ``warning: oncall.policies.default.steps.0: this escalation step pages nobody``.
    Here carol has only an email address and no email channel is configured: the default policy's second step
    pages nobody (a person with no channel to reach them counts as nobody)."""
    settings = Settings.model_validate(
        {
            **SETTINGS,
            "notify": {"channels": {"slack": SETTINGS["notify"]["channels"]["slack"]}},
        }
    )
    warnings = coverage_warnings(settings, datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    assert any("policies.default.steps" in w for w in warnings), warnings


async def test_a_person_no_channel_reaches_is_not_said_to_be_paged_and_counts_as_nobody(
    world: World,  # noqa: F811
) -> None:
    """carol has only email, and no email channel is configured for people: nothing is sent to her. The timeline
    said "paged carol by no email channel" and the nobody-on-call counter did not count the step (fixed)."""
    ladders = Ladders(
        {"default": Policy("default", (Step((Ref(RefKind.PERSON, "carol"),)),))},
        (),
        Roster(PEOPLE, {}),
        {"slack": "slack"},
        KINDS,
    )
    world.processor = processor(world.store, world.clock, world.tallies, ladders)
    incident = await world.open("web-7d4b9c6f5-x2x9z")
    await world.at(0)
    assert await world.pages(incident) == []
    line = (await world.lines(incident))[-1]
    assert "paged carol" not in line and "carol has no contact point to page (no email channel)" in line, line
    assert [p for t in world.tallies for p in t.nobody] == ["default"]
