"""Review of issue #15 (escalation and on-call): reproductions of what the review found.

Each test states what the issue asks and fails on main where main does not do it (see the review report).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receiver.cli.oncall import coverage_warnings
from receiver.config import Settings
from receiver.incidents.lifecycle import Signal
from receiver.notify.channels.pagerduty import dedup_key
from receiver.notify.pagerduty_webhooks import actor as pagerduty_actor
from receiver.notify.planning import PAGE_ROUTE
from tests import channel_support as support
from tests.test_escalation import World, world  # noqa: F401 (the fixture)
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


@pytest.mark.xfail(strict=True, reason="review #15: a PagerDuty page reuses the incident's dedup_key")
def test_a_page_through_pagerduty_is_a_new_alert_not_the_incidents_own() -> None:
    """A step ``channel:pagerduty`` (or a round repeating it) sends a PAGED trigger with the incident's own
    dedup_key: PagerDuty folds it into the alert the incident opened (or the previous round's), and pages
    nobody, while the timeline says "paged pagerduty". A page must be an alert of its own."""
    opened = support.delivery(Signal.OPENED, channel="pagerduty")
    paged = support.delivery(Signal.PAGED, channel="pagerduty", event="paged@1")
    paged_again = support.delivery(Signal.PAGED, channel="pagerduty", event="paged@2")
    assert dedup_key(paged) != dedup_key(opened)
    assert dedup_key(paged_again) != dedup_key(paged)
    assert PAGE_ROUTE  # (the escalation route a person's page carries)


@pytest.mark.xfail(strict=True, reason="review #15: the coverage check has no finding for a step that pages nobody")
def test_config_check_warns_of_a_policy_step_that_reaches_nobody() -> None:
    """The issue's coverage check reports "a step of a policy that resolves to nobody". Here carol has only an
    email address and no email channel is configured: the default policy's second step pages nobody, and only
    the timeline says so, at 03:00, when it fires ("carol has no contact point to page")."""
    settings = Settings.model_validate(
        {
            **SETTINGS,
            "notify": {"channels": {"slack": SETTINGS["notify"]["channels"]["slack"]}},
        }
    )
    warnings = coverage_warnings(settings, datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    assert any("policies.default.steps" in w for w in warnings), warnings
