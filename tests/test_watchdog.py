"""Ignored alerts and the dead man's switch, through the processor and a real store.

Watchdog and InfoInhibitor are stored and listed but never part of an incident; a Watchdog that stops
arriving opens the daemon's own incident once, which resolves when it comes back; before the first
Watchdog nothing is raised; a restart neither forgets nor repeats the alarm.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from receiver.alerts.dedup import DedupPolicy
from receiver.alerts.matchers import parse
from receiver.engine.processor import Processor
from receiver.incidents.book import Book, IncidentPolicy
from receiver.incidents.lifecycle import IncidentStatus
from receiver.incidents.severity import Severity
from receiver.incidents.watchdog import ALARM_FINGERPRINT, WatchdogPolicy, missing, verdict
from receiver.metrics import Metrics
from receiver.store import AlertQuery, IncidentQuery
from receiver.store.sqlite import SQLiteStore
from receiver.web.scrape import Scrape
from tests.conftest import T0
from tests.payloads import alert, body

WATCHDOG = alert("Watchdog", starts="2026-11-22T09:00:00Z", severity="none", prometheus="monitoring/kps-prometheus")
INHIBITOR = alert("InfoInhibitor", starts="2026-11-22T09:00:00Z", severity="none", namespace="shop")
POLICY = WatchdogPolicy()


@pytest.mark.parametrize(
    ("last_seen", "now", "raised", "expected"),
    [
        (None, 600, False, None),  # never seen: nothing to miss
        (0, 599, False, None),
        (0, 600, False, "raise"),
        (0, 6000, True, None),  # raised once
        (700, 710, True, "clear"),  # back
        (None, 6000, True, None),  # forgotten by the store: the alarm stays until it comes back
    ],
)
def test_the_watchdog_is_overdue_after_missing_after_and_raised_once(
    last_seen: int | None, now: int, raised: bool, expected: str | None
) -> None:
    seen = None if last_seen is None else T0 + timedelta(seconds=last_seen)
    assert verdict(seen, T0 + timedelta(seconds=now), POLICY, raised) == expected


def test_a_disabled_watchdog_is_never_missing_and_clears_its_alarm() -> None:
    off = WatchdogPolicy(enabled=False)
    assert not missing(T0, T0 + timedelta(days=1), off)
    assert verdict(None, T0, off, raised=True) == "clear"


def processor(store: SQLiteStore, policy: IncidentPolicy | None = None) -> Processor:
    book = Book(policy or IncidentPolicy())
    return Processor(store, policy=DedupPolicy(), report=lambda c, t: None, book=book, clock=lambda: T0)


async def deliver(store: SQLiteStore, proc: Processor, at: datetime, *alerts: dict[str, object]) -> None:
    await store.accept(body(*alerts), at)
    await proc.drain()


async def test_ignored_alerts_are_stored_but_open_no_incident(store: SQLiteStore) -> None:
    proc = processor(store)
    crash = alert("KubePodCrashLooping", severity="warning", namespace="shop", pod="web-7d4b9c6f5-x2x9z")
    await deliver(store, proc, T0, WATCHDOG, INHIBITOR, crash)
    listed = await store.alerts(AlertQuery())
    assert sorted(a.labels["alertname"] for a in listed.alerts) == ["InfoInhibitor", "KubePodCrashLooping", "Watchdog"]
    [incident] = await store.incidents(IncidentQuery())
    assert incident.scope == "namespace:shop" and incident.firing == 1
    assert incident.services == {"shop/web"}


async def test_a_configured_ignore_list_replaces_the_default(store: SQLiteStore) -> None:
    proc = processor(store, IncidentPolicy(ignore=((parse('alertname="KubePodCrashLooping"'),),)))
    crash = alert("KubePodCrashLooping", severity="warning", namespace="shop", pod="web-7d4b9c6f5-x2x9z")
    await deliver(store, proc, T0, crash, INHIBITOR)
    [incident] = await store.incidents(IncidentQuery())
    assert incident.title == "InfoInhibitor in namespace shop"


async def test_no_watchdog_ever_raises_nothing(store: SQLiteStore) -> None:
    proc = processor(store)
    await deliver(store, proc, T0, alert("KubePodCrashLooping", severity="warning", namespace="shop"))
    await proc.watch(T0 + timedelta(days=3))
    assert [i.title for i in await store.incidents(IncidentQuery())] == ["KubePodCrashLooping in namespace shop"]


async def test_a_missing_watchdog_opens_one_incident_until_it_comes_back(store: SQLiteStore) -> None:
    proc = processor(store)
    for minute in range(0, 30, 5):  # Alertmanager repeats it every 5 minutes
        await deliver(store, proc, T0 + timedelta(minutes=minute), WATCHDOG)
        await proc.watch(T0 + timedelta(minutes=minute))
    assert not await store.incidents(IncidentQuery())
    last = T0 + timedelta(minutes=25)

    await proc.watch(last + timedelta(minutes=9))
    assert not await store.incidents(IncidentQuery())
    await proc.watch(last + timedelta(minutes=10))
    await proc.watch(last + timedelta(minutes=11))
    [incident] = await store.incidents(IncidentQuery())
    assert incident.title == "the alerting pipeline is down: no Watchdog since 2026-11-22T09:55:00Z"
    assert (incident.severity, incident.status, incident.firing) == (Severity.SEV2, IncidentStatus.TRIGGERED, 1)
    assert incident.scope == f"alert:{ALARM_FINGERPRINT}" and not incident.services

    restarted = processor(store)  # the alarm is in the store: a restart neither forgets nor repeats it
    restarted.cursor = await store.cursor()
    await restarted.watch(last + timedelta(hours=2))
    assert len(await store.incidents(IncidentQuery())) == 1

    back = last + timedelta(hours=3)
    await deliver(store, restarted, back, WATCHDOG)
    await restarted.watch(back)
    [incident] = await store.incidents(IncidentQuery())
    assert incident.firing == 0 and incident.status is IncidentStatus.TRIGGERED
    await restarted.tick(back + timedelta(minutes=5))
    [incident] = await store.incidents(IncidentQuery())
    assert incident.status is IncidentStatus.RESOLVED
    found = await store.incident(incident.id, timeline_limit=50)
    assert found is not None
    assert any(e.text == "the Watchdog arrives again" for e in found[1])


async def test_the_watchdogs_severity_and_matchers_are_configurable(store: SQLiteStore) -> None:
    policy = WatchdogPolicy(matchers=(parse('alertname="DeadMansSwitch"'),), severity=Severity.SEV1)
    proc = processor(store, IncidentPolicy(watchdog=policy))
    await deliver(store, proc, T0, alert("DeadMansSwitch", severity="none"))
    await proc.watch(T0 + timedelta(minutes=10))
    [incident] = await store.incidents(IncidentQuery())
    assert incident.severity is Severity.SEV1


async def test_the_watchdog_metrics_are_read_at_scrape_time(store: SQLiteStore) -> None:
    registry = CollectorRegistry()
    now = [T0]
    scrape = Scrape(Metrics(registry), store, lambda: 0, clock=lambda: now[0])

    async def sample() -> tuple[float | None, float | None]:
        await scrape.handle(cast(web.Request, None))
        seen = registry.get_sample_value("receiver_watchdog_last_seen_timestamp_seconds")
        return seen, registry.get_sample_value("receiver_watchdog_missing")

    assert await sample() == (0, 0)  # never seen: not missing
    await deliver(store, processor(store), T0, WATCHDOG)
    assert await sample() == (T0.timestamp(), 0)
    now[0] = T0 + timedelta(minutes=10)
    assert await sample() == (T0.timestamp(), 1)
