"""Playbook runs are recorded with the news that asks for them: once per playbook, alert and episode."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receiver.plan import AlertFacts, NamespacePolicy
from receiver.playbook import load_dirs
from receiver.runs import RunStatus, intents
from receiver.severity import Severity
from tests.payloads import alert
from tests.test_http import MakeClient, make_client, processed
from tests.test_incidents_api import DATABASE_DOWN, post

__all__ = ["make_client"]
ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = load_dirs([ROOT / "playbooks"]).playbooks
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def runs(data_dir: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(data_dir / "receiver.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY id")]


def crashloop(starts: str = "2026-11-22T09:00:00Z") -> dict[str, Any]:
    return alert("KubePodCrashLooping", starts=starts, namespace="shop", pod="cart-7d9f-x", deployment="cart")


async def test_a_triggering_alert_records_one_run_per_episode(make_client: MakeClient, tmp_path: Path) -> None:
    client = await make_client()
    await post(client, crashloop())
    await post(client, crashloop())  # Alertmanager repeats it, an HA peer sends it again
    await processed(client)
    [run] = runs(tmp_path / "data")
    assert (run["playbook"], run["status"], run["incident"]) == ("crashloop", RunStatus.PENDING, "INC-20261122-0001")
    steps = json.loads(run["plan"])
    assert steps[0] == {
        "name": "delete_pod",
        "action": "delete_pod",
        "inputs": {"kind": "Pod", "namespace": "shop", "name": "cart-7d9f-x", "timeout_seconds": 60.0},
        "when": None,
        "refused": None,
    }
    assert json.loads(run["alert"])["labels"]["pod"] == "cart-7d9f-x"
    await post(client, crashloop(starts="2026-11-22T09:20:00Z"))  # it fires again: a new episode
    assert [r["playbook"] for r in runs(tmp_path / "data")] == ["crashloop", "crashloop"]


async def test_symptoms_and_untriggered_alerts_record_no_run(make_client: MakeClient, tmp_path: Path) -> None:
    client = await make_client(incidents={"suppression": [DATABASE_DOWN]})
    await post(client, alert("DatabaseDown", namespace="data", cluster="eu1"))
    await post(client, alert("HighErrorRate", namespace="api", cluster="eu1", deployment="api", severity="critical"))
    await post(client, alert("SomethingElse", namespace="shop"))
    assert runs(tmp_path / "data") == []


def test_intents_are_pure() -> None:
    facts = AlertFacts("f", "firing", {"alertname": "HighErrorRate", "namespace": "a", "deployment": "b"}, {}, NOW)
    found = intents(
        PLAYBOOKS, facts, NamespacePolicy(), incident="INC-1", severity=Severity.SEV1, symptom=False, now=NOW
    )
    assert [(i.playbook, i.episode, i.incident) for i in found] == [("api-error-rate", NOW, "INC-1")]
    assert (
        intents(PLAYBOOKS, facts, NamespacePolicy(), incident="INC-1", severity=Severity.SEV1, symptom=True, now=NOW)
        == []
    )
    assert (
        intents(PLAYBOOKS, facts, NamespacePolicy(), incident=None, severity=Severity.SEV3, symptom=False, now=NOW)
        == []
    )
