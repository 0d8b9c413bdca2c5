"""``receiver escalation plan`` in-process: the ladder for a severity at a time (schedules evaluated at each
step, so a handoff during the ladder shows), and the rest of a real incident's escalation read from the store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pydantic
import pytest
import yaml

from receiver import cli, config
from receiver.alerts.dedup import DedupPolicy
from receiver.engine.processor import Processor
from receiver.incidents.book import Book
from receiver.notify.cadence import Cadence
from receiver.notify.escalation import Escalator
from receiver.notify.planning import Channels, Planner
from receiver.store import IncidentQuery, backends
from tests.corpus import alert, payload

SETTINGS: dict[str, Any] = {
    "notify": {
        "channels": {
            "slack": {"type": "slack", "token": "xoxb-1", "channel": "C0123ABCD"},
            "email": {"type": "email", "host": "127.0.0.1", "sender": "r@example.com", "to": ["team@example.com"]},
        }
    },
    "oncall": {
        "people": {
            "alice": {
                "timezone": "Europe/Berlin",
                "slack_user": "U0ALICE",
                "email": "alice@example.com",
                "rules": [{"contact": "slack"}, {"contact": "email", "after": "5m"}],
            },
            "bob": {"timezone": "America/New_York", "slack_user": "U0BOB"},
            "carol": {"timezone": "Europe/Berlin", "email": "carol@example.com"},
        },
        "schedules": {
            "primary": {
                "timezone": "Europe/Berlin",
                "layers": [
                    {"rotations": [{"participants": ["alice", "bob"], "shift": "weekly", "start": "2026-11-23T09:00"}]}
                ],
            },
        },
        "policies": {
            "default": {"steps": [{"notify": ["schedule:primary"]}, {"notify": ["person:carol"], "wait": "10m"}]},
            "urgent": {"steps": [{"notify": ["schedule:primary", "person:carol", "channel:slack"]}]},
        },
        "policy_routes": [{"matchers": ['severity="SEV1"'], "policy": "urgent"}],
    },
}


@pytest.fixture
def settings_file(tmp_path: Path) -> str:
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump({**SETTINGS, "data_dir": str(tmp_path / "data")}))
    return str(path)


def test_a_severity_s_ladder_shows_who_is_paged_when_and_how_across_a_handoff(
    settings_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # 07:58 UTC on Monday 7 December is 08:58 in Berlin: bob has the primary schedule until 09:00, then alice
    argv = ["escalation", "plan", "--severity", "SEV3", "--at", "2026-12-07T07:58:00Z", "--config", settings_file]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        "policy default: 2 steps, 1 round(s)",
        "2026-12-07 07:58:00 UTC  default step 1/2: bob (schedule:primary)  slack to slack:U0BOB",
        "2026-12-07 08:03:00 UTC  default step 2/2: carol  email to email:carol@example.com",
        "2026-12-07 08:13:00 UTC  escalation default ends: nobody acknowledged",
    ]
    argv[3:6] = ["SEV1", "--at", "2026-12-07T08:00:00Z"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        "policy urgent: 1 steps, 1 round(s)",
        "2026-12-07 08:00:00 UTC  urgent step 1/1: alice (schedule:primary)  slack to slack:U0ALICE",
        "2026-12-07 08:00:00 UTC  urgent step 1/1: carol  email to email:carol@example.com",
        "2026-12-07 08:00:00 UTC  urgent step 1/1: channel:slack  to slack",
        "2026-12-07 08:05:00 UTC  urgent step 1/1: alice (schedule:primary)  email to email:alice@example.com",
        "2026-12-07 08:05:00 UTC  escalation urgent ends: nobody acknowledged",
    ]


async def _escalating(settings: config.Settings, t0: datetime) -> str:
    """An incident opened at ``t0`` in the store, its first step fired; its id."""
    store = backends.create(settings)
    await store.open()
    try:
        kinds = {n: c.type for n, c in settings.notify.channels.items()}
        planner = Planner(settings.notify.route_list(), Channels(kinds, lambda _, s: True), Cadence())
        processor = Processor(
            store,
            policy=DedupPolicy(),
            report=lambda *_: None,
            book=Book(settings.incidents.policy()),
            clock=lambda: t0,
            planner=planner,
            escalator=Escalator(settings.ladders()),
        )
        alerts = [alert("KubePodCrashLooping", namespace="shop", pod="web-7d4b9c6f5-x2x9z")]
        await store.accept(orjson.dumps(payload(alerts, starts_at=t0 - timedelta(minutes=15))), t0)
        await processor.drain()
        assert await processor.escalate(t0) == 1  # step 1 fired: the plan is what is left
        [incident] = await store.incidents(IncidentQuery())
    finally:
        await store.close()
    return incident.id


def test_an_incident_s_plan_is_the_rest_of_its_ladder_read_from_the_store(
    settings_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = config.load(Path(settings_file), {})
    incident = asyncio.run(_escalating(settings, datetime(2026, 12, 1, 10, 0, tzinfo=UTC)))
    assert cli.main(["escalation", "plan", "--incident", incident, "--config", settings_file]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "policy default: 2 steps, 1 round(s)",
        "2026-12-01 10:05:00 UTC  default step 2/2: carol  email to email:carol@example.com",
        "2026-12-01 10:15:00 UTC  escalation default ends: nobody acknowledged",
    ]
    assert cli.main(["escalation", "plan", "--incident", "INC-20261201-0099", "--config", settings_file]) == 2
    assert "no incident INC-20261201-0099" in capsys.readouterr().err


def test_without_policies_it_says_so_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump({"oncall": {"policies": {}}}))
    assert cli.main(["escalation", "plan", "--severity", "SEV2", "--config", str(path)]) == 2
    assert "no escalation policy" in capsys.readouterr().err


def test_config_check_warns_of_an_escalation_step_that_pages_nobody(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the real clock, as an operator runs it: the only schedule the step pages starts 10 days from now."""
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=10)
    rotation = {"participants": ["alice"], "shift": "daily", "start": start.strftime("%Y-%m-%dT%H:%M")}
    oncall = {
        "people": {"alice": {"timezone": "UTC", "slack_user": "U0ALICE"}},
        "schedules": {"later": {"timezone": "UTC", "layers": [{"rotations": [rotation]}]}},
        "policies": {"default": {"steps": [{"notify": ["schedule:later"]}, {"notify": ["person:alice"]}]}},
    }
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump({"notify": SETTINGS["notify"], "oncall": oncall}))
    assert cli.main(["config", "check", str(path)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if ": warning: " in line]
    assert [w.split(": ")[2] for w in warnings] == ["oncall.schedules.later", "oncall.policies.default.steps.0"]
    assert "this escalation step pages nobody from " in warnings[1]
    assert f" to {start:%Y-%m-%dT%H:%M:%SZ} (" in warnings[1]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"policy_routes": [{"policy": "nightly"}]}, "policy_routes.0.policy: 'nightly' is not in oncall.policies"),
        (
            {"policies": {"default": {"steps": [{"notify": ["schedule:nights"]}]}}, "policy_routes": []},
            "policies.default.steps.0.notify.0: 'nights' is not in oncall.schedules",
        ),
        ({"policies": {"default": {"steps": [{"notify": ["team:sre"]}]}}}, "'team' is not person, schedule or channel"),
        (
            {"policies": {"default": {"steps": [{"notify": ["channel:pager"]}]}}, "policy_routes": []},
            "oncall.policies.default.steps.0.notify: channel 'pager' is not in notify.channels",
        ),
        ({"contacts": {"slack": "email"}}, "oncall.contacts.slack: 'email' is a email channel, not slack"),
        (
            {"people": {"dave": {"timezone": "UTC", "rules": [{"contact": "channel:pd-dave"}]}}},
            "oncall.people.dave.rules.0.contact: channel 'pd-dave' is not in notify.channels",
        ),
        ({"people": {"dave": {"timezone": "UTC", "rules": [{"contact": "phone"}]}}}, "people.dave.rules.0.contact"),
        ({"people": {"dave": {"timezone": "UTC", "slack_user": "alice"}}}, "'alice' is not a Slack member id"),
        ({"policies": {"default": {"steps": [{"notify": ["person:alice"]}], "repeat": 11}}}, "repeat"),
    ],
)
def test_escalation_settings_that_cannot_work_are_refused_naming_the_key(change: dict[str, Any], error: str) -> None:
    oncall = {**SETTINGS["oncall"], **change}
    if "people" in change:
        oncall["people"] = {**SETTINGS["oncall"]["people"], **change["people"]}
    with pytest.raises(pydantic.ValidationError) as refused:
        config.Settings.model_validate({**SETTINGS, "oncall": oncall})
    assert error in str(refused.value)
