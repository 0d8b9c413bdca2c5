"""The on-call routes and metrics of a running app: the ``.ics`` calendars (read back by a real parser), their
errors, their authorisation, the on-call gauges at scrape time, and the engine's coverage check reaching
``/metrics``; ``receiver config check`` printing the gaps as warnings.

The app runs on the test's clock (2026-11-22 09:30 UTC), so nothing depends on today's date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from receiver import cli
from receiver.app import create_app
from receiver.config import Settings
from receiver.web.calendar_api import CONTENT_TYPE
from tests.conftest import T0, Clock

TOKEN = "api-token-0123456789"
API = {"Authorization": f"Bearer {TOKEN}"}
SECONDARY = {
    "timezone": "UTC",
    "layers": [{"rotations": [{"participants": ["carol"], "shift": "weekly", "start": "2026-11-01T00:00"}]}],
}
ONCALL: dict[str, Any] = {
    "people": {
        "alice": {"timezone": "Europe/Berlin"},
        "bob": {"timezone": "UTC"},
        "carol": {"timezone": "UTC"},
        "dave": {"timezone": "UTC"},
    },
    "schedules": {
        "primary": {  # starts the day after T0: nobody until 2026-11-23 08:00 UTC
            "timezone": "Europe/Berlin",
            "layers": [
                {"rotations": [{"participants": ["alice", "bob"], "shift": "daily", "start": "2026-11-23T09:00"}]}
            ],
            "overrides": [{"person": "carol", "start": "2026-11-24T12:00:00Z", "end": "2026-11-24T14:00:00Z"}],
        },
        "secondary": SECONDARY,
    },
}


@pytest.fixture
async def client(aiohttp_client: Any, make_settings: Callable[..., Settings], clock: Clock) -> Any:
    settings = make_settings(api={"token": TOKEN}, oncall=ONCALL)
    app = create_app(settings, registry=CollectorRegistry(), clock=clock, engine="inline")
    return await aiohttp_client(app)


def _events(body: str) -> list[tuple[str, datetime, datetime]]:
    parsed = icalendar.Calendar.from_ical(body)
    return [(str(e["SUMMARY"]), e.decoded("DTSTART"), e.decoded("DTEND")) for e in parsed.walk("VEVENT")]


def _utc(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


async def test_a_schedules_calendar_has_its_shifts_from_midnight_for_the_weeks_asked(client: Any) -> None:
    response = await client.get("/api/v1/schedules/primary.ics?weeks=1", headers=API)
    assert response.status == 200
    assert response.content_type == CONTENT_TYPE and response.charset == "utf-8"
    body = await response.text()
    assert body.startswith("BEGIN:VCALENDAR\r\n") and "X-WR-CALNAME:On call: primary\r\n" in body
    assert _events(body) == [
        ("On call: alice (primary)", _utc(11, 23, 8), _utc(11, 24, 8)),
        ("On call: bob (primary)", _utc(11, 24, 8), _utc(11, 24, 12)),
        ("On call: carol (primary)", _utc(11, 24, 12), _utc(11, 24, 14)),
        ("On call: bob (primary)", _utc(11, 24, 14), _utc(11, 25, 8)),
        ("On call: alice (primary)", _utc(11, 25, 8), _utc(11, 26, 8)),
        ("On call: bob (primary)", _utc(11, 26, 8), _utc(11, 27, 8)),
        ("On call: alice (primary)", _utc(11, 27, 8), _utc(11, 28, 8)),
        ("On call: bob (primary)", _utc(11, 28, 8), _utc(11, 29, 0)),  # the window ends 7 days after midnight
    ]
    assert f"DTSTAMP:{T0:%Y%m%dT%H%M%SZ}\r\n" in body


async def test_the_default_window_is_four_weeks_and_a_person_filter_keeps_theirs(client: Any) -> None:
    whole = _events(await (await client.get("/api/v1/schedules/secondary.ics", headers=API)).text())
    assert whole == [("On call: carol (secondary)", _utc(11, 22), _utc(11, 22) + timedelta(weeks=4))]
    carols = _events(await (await client.get("/api/v1/schedules/primary.ics?person=carol", headers=API)).text())
    assert carols == [("On call: carol (primary)", _utc(11, 24, 12), _utc(11, 24, 14))]
    nobodys = await client.get("/api/v1/schedules/primary.ics?person=dave", headers=API)
    assert nobodys.status == 200 and _events(await nobodys.text()) == []


async def test_a_persons_calendar_spans_every_schedule(client: Any) -> None:
    response = await client.get("/api/v1/people/carol.ics?weeks=1", headers=API)
    assert response.status == 200
    body = await response.text()
    assert "X-WR-CALNAME:On call: carol\r\n" in body
    assert _events(body) == [
        ("On call: carol (secondary)", _utc(11, 22), _utc(11, 29)),
        ("On call: carol (primary)", _utc(11, 24, 12), _utc(11, 24, 14)),
    ]


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/v1/schedules/nope.ics", 404, "no schedule 'nope' in oncall.schedules"),
        ("/api/v1/schedules/%3Cb%3E.ics", 404, "no schedule '<b>' in oncall.schedules"),
        ("/api/v1/schedules/" + "x" * 300 + ".ics", 404, "no schedule '" + "x" * 100 + "...' in oncall.schedules"),
        ("/api/v1/people/zed.ics", 404, "no person 'zed' in oncall.people"),
        ("/api/v1/schedules/primary.ics?weeks=0", 400, "weeks: must be a whole number from 1 to 52"),
        ("/api/v1/schedules/primary.ics?weeks=53", 400, "weeks: must be a whole number from 1 to 52"),
        ("/api/v1/schedules/primary.ics?weeks=%C2%B2", 400, "weeks: must be a whole number from 1 to 52"),
        ("/api/v1/people/alice.ics?weeks=x", 400, "weeks: must be a whole number from 1 to 52"),
        ("/api/v1/schedules/primary.ics?person=zed", 400, "person: 'zed' is not in oncall.people"),
    ],
)
async def test_unknown_names_are_404_and_bad_parameters_400_naming_them(
    client: Any, path: str, status: int, error: str
) -> None:
    response = await client.get(path, headers=API)
    assert response.status == status
    assert await response.json() == {"error": error}


@pytest.mark.parametrize("path", ["/api/v1/schedules/primary.ics", "/api/v1/people/alice.ics"])
async def test_the_calendars_need_the_api_token_like_every_read(client: Any, path: str) -> None:
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401


async def _metrics(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = await (await client.get("/metrics")).text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_who_is_on_call_is_read_at_scrape_on_the_apps_clock(client: Any, clock: Clock) -> None:
    found = await _metrics(client)
    assert found[("receiver_oncall_nobody", (("schedule", "primary"),))] == 1
    assert found[("receiver_oncall_nobody", (("schedule", "secondary"),))] == 0
    assert found[("receiver_oncall_on_call", (("person", "carol"), ("schedule", "secondary")))] == 1
    assert not any(name == "receiver_oncall_on_call" and ("schedule", "primary") in labels for name, labels in found)
    clock.now = _utc(11, 24, 13)
    found = await _metrics(client)
    assert found[("receiver_oncall_on_call", (("person", "carol"), ("schedule", "primary")))] == 1
    assert found[("receiver_oncall_nobody", (("schedule", "primary"),))] == 0


async def test_the_engines_coverage_check_reaches_the_metrics_at_start(client: Any) -> None:
    gap = ("receiver_oncall_coverage_gap_seconds", (("schedule", "primary"),))
    deadline = asyncio.get_running_loop().time() + 10
    found = await _metrics(client)
    while gap not in found:
        assert asyncio.get_running_loop().time() < deadline, "the coverage check never reported"
        await asyncio.sleep(0.01)
        found = await _metrics(client)
    assert found[gap] == (_utc(11, 23, 8) - T0).total_seconds()  # from T0 to the rotation's first handoff
    assert found[("receiver_oncall_coverage_gap_seconds", (("schedule", "secondary"),))] == 0
    assert found[("receiver_oncall_coverage_checked_timestamp_seconds", ())] == T0.timestamp()


def test_config_check_prints_the_gaps_as_warnings_and_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the command line, on the real clock: the rotation starts 10 days from now, in UTC."""
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=10)
    oncall = {
        "people": {"alice": {"timezone": "UTC"}},
        "schedules": {
            "later": {
                "timezone": "UTC",
                "layers": [
                    {
                        "rotations": [
                            {"participants": ["alice"], "shift": "daily", "start": start.strftime("%Y-%m-%dT%H:%M")}
                        ]
                    }
                ],
            }
        },
        "coverage": {"weeks": 2},
    }
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump({"oncall": oncall}))
    assert cli.main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok\n"
    [warning] = [line for line in err.splitlines() if ": warning: " in line]  # beside the note on signed links
    assert warning.startswith(f"{path}: warning: oncall.schedules.later: nobody is on call from ")
    assert f" to {start:%Y-%m-%dT%H:%M:%SZ} (" in warning


def test_config_check_of_a_covered_schedule_warns_of_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "receiver.yml"
    oncall = {"people": ONCALL["people"], "schedules": {"secondary": SECONDARY}}
    path.write_text(yaml.safe_dump({"oncall": oncall}))
    assert cli.main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok\n"
    assert "warning" not in err and err.count("\n") == 1  # only the note that signed links are off


@pytest.mark.parametrize(("weeks", "ok"), [(1, True), (52, True), (0, False), (53, False)])
def test_the_coverage_window_is_bounded(make_settings: Callable[..., Settings], weeks: int, ok: bool) -> None:
    from receiver.config import ConfigError

    if ok:
        assert make_settings(oncall={"coverage": {"weeks": weeks}}).oncall.coverage.weeks == weeks
    else:
        with pytest.raises(ConfigError) as raised:
            make_settings(oncall={"coverage": {"weeks": weeks}})
        assert [key for key, _ in raised.value.problems] == ["oncall.coverage.weeks"]
