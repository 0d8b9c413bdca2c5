"""``receiver notify test`` and ``notify preview``, run as the command line runs them, against the PagerDuty fake."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from receiver import config
from receiver.alerts.dedup import DedupPolicy
from receiver.engine.processor import Processor
from receiver.incidents.book import Book, IncidentPolicy
from receiver.notify import channels as channel_types
from receiver.notify.cadence import Cadence
from receiver.notify.planning import Channels, Planner
from receiver.store.sqlite import SQLiteStore
from tests.conftest import Clock
from tests.corpus import alert, payload
from tests.fakes.pagerduty import PagerDutyFake
from tests.fakes.server import Fault

KEY = "R0123456789abcdef0123456789abcde"


def settings_file(tmp_path: Path, fake: PagerDutyFake) -> Path:
    file = tmp_path / "receiver.yml"
    channel = {"type": "pagerduty", "routing_key": "env:PD_KEY", "api_url": fake.url}
    file.write_text(
        yaml.safe_dump({"data_dir": str(tmp_path / "data"), "notify": {"channels": {"pagerduty": channel}}})
    )
    return file


async def receiver(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "receiver",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PD_KEY": KEY, "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_notify_test_sends_one_test_event_and_says_what_pagerduty_answered(tmp_path: Path, clock: Clock) -> None:
    async with PagerDutyFake(clock=clock) as fake:
        file = settings_file(tmp_path, fake)
        status, out, _ = await receiver("notify", "test", "--channel", "pagerduty", "--config", str(file))
        assert status == 0, out
        [sent, resolved] = fake.received("/v2/enqueue")
        event: dict[str, Any] = sent.body
        assert event["event_action"] == "trigger" and event["dedup_key"].startswith("receiver-test-")
        assert (resolved.body["event_action"], resolved.body["dedup_key"]) == ("resolve", event["dedup_key"])
        test_alert = fake.alert(event["dedup_key"])
        assert test_alert is not None and test_alert.status == "resolved"  # nobody has to resolve it
        assert out.startswith("pagerduty: sent") and "the test alert was triggered, then resolved" in out
        fake.faults.add(Fault.status_only(500), times=1)
        status, _, err = await receiver("notify", "test", "--channel", "pagerduty", "--config", str(file))
        assert status == 1 and "pagerduty: failed (server_error)" in err and KEY not in err
        status, _, err = await receiver("notify", "test", "--channel", "nope", "--config", str(file))
        assert status == 2 and "no channel 'nope'" in err


async def test_notify_preview_prints_what_each_channel_of_an_incident_would_send(tmp_path: Path, clock: Clock) -> None:
    async with PagerDutyFake(clock=clock) as fake:
        file = settings_file(tmp_path, fake)
        settings = config.load(file, {"PD_KEY": KEY})
        (tmp_path / "data").mkdir()
        store = SQLiteStore(settings.database_path)
        await store.open()
        channels = {n: channel_types.build(n, c) for n, c in settings.notify.channels.items()}
        wants = Channels({n: c.kind for n, c in channels.items()}, lambda n, s: channels[n].wants(s))
        planner = Planner(settings.notify.route_list(), wants, Cadence())
        processor = Processor(
            store,
            policy=DedupPolicy(),
            report=lambda *_: None,
            book=Book(IncidentPolicy()),
            clock=clock,
            planner=planner,
        )
        critical = alert("KubePersistentVolumeFillingUp", "critical")
        await store.accept(orjson.dumps(payload([critical], starts_at=clock() - timedelta(minutes=5))), clock())
        await processor.drain()
        [row] = await store.notifications()
        await store.close()
        status, out, err = await receiver("notify", "preview", "--incident", row.incident, "--config", str(file))
        assert status == 0, err
        preview = json.loads(out)
        event = preview["pagerduty"]
        assert (event["event_action"], event["dedup_key"]) == ("trigger", row.incident)
        assert event["payload"]["severity"] == "error"  # SEV2: a critical alert on its own
        assert fake.received() == []  # nothing was sent
        status, _, err = await receiver("notify", "preview", "--incident", "INC-20200101-0001", "--config", str(file))
        assert status == 2 and "no incident INC-20200101-0001" in err
