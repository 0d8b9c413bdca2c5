"""Ignored alerts and the dead man's switch, through the processor and a real store.

Watchdog and InfoInhibitor are stored and listed but never part of an incident; a Watchdog that stops
arriving opens the daemon's own incident once, which resolves when it comes back; before the first
Watchdog nothing is raised; a restart neither forgets nor repeats the alarm, nor disarms the switch (its
arrivals are in the store): an engine stopped and started again on the same data raises it on time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from receiver.alerts.dedup import AlertState, Status
from receiver.alerts.matchers import parse
from receiver.alerts.wire import decode
from receiver.config import Settings
from receiver.engine.builder import Engine, build
from receiver.incidents.book import IncidentPolicy
from receiver.incidents.lifecycle import IncidentStatus
from receiver.incidents.severity import Severity
from receiver.incidents.watchdog import (
    ALARM_FINGERPRINT,
    Sightings,
    WatchdogPolicy,
    armed,
    arrived,
    missing,
    verdict,
)
from receiver.metrics import Metrics
from receiver.playbooks.plan import NamespacePolicy
from receiver.playbooks.remediation import Remediation
from receiver.store import AlertQuery, IncidentQuery
from receiver.store.sqlite import SQLiteStore
from receiver.web.scrape import Scrape
from tests.conftest import T0, Clock
from tests.corpus import CorpusAlert, alert, payload
from tests.delivering import deliver, processor
from tests.e2e.harness import eventually

WATCHDOG = alert("Watchdog")
INHIBITOR = alert("InfoInhibitor", namespace="shop")
CRASH = alert("KubePodCrashLooping", namespace="shop", pod="web-7d4b9c6f5-x2x9z")
POLICY = WatchdogPolicy()


def seen(*minutes: int) -> Sightings:
    sightings = Sightings()
    for minute in minutes:
        sightings = sightings.seen(T0 + timedelta(minutes=minute))
    return sightings


@pytest.mark.parametrize(
    ("sightings", "now", "raised", "expected"),
    [
        (seen(), 600, False, None),  # never seen: nothing to miss
        (seen(0), 600, False, None),  # seen once: its cadence is unknown, the switch is not armed
        (seen(0, 2), 11, False, None),
        (seen(0, 2), 12, False, "raise"),  # two arrivals 2 minutes apart, then 10 minutes of nothing
        (seen(0, 2, 2, 2), 12, False, "raise"),  # the same arrival read again is no new one
        (seen(0, 720), 740, False, None),  # every 12 hours: never armed, no false alarm
        (seen(0, 2), 6000, True, None),  # raised once
        (seen(0, 2, 100), 100, True, "clear"),  # back
        (seen(100), 101, True, "clear"),  # back, seen by an engine started since
        (seen(), 6000, True, None),  # an engine started since has not seen it: the alarm stays
    ],
)
def test_the_watchdog_is_overdue_after_missing_after_once_armed_and_raised_once(
    sightings: Sightings, now: int, raised: bool, expected: str | None
) -> None:
    assert verdict(sightings, T0 + timedelta(minutes=now), POLICY, raised) == expected


def test_the_alarm_waits_for_notifications_received_before_the_deadline_and_not_processed_yet() -> None:
    """One accepted while the engine was down may carry the watchdog: raise only once it is processed."""
    due = T0 + timedelta(minutes=12)
    assert verdict(seen(0, 2), due, POLICY, False, heard_until=due - timedelta(seconds=1)) is None
    assert verdict(seen(0, 2), due, POLICY, False, heard_until=due) == "raise"  # received after the deadline
    assert verdict(seen(0, 2), due + timedelta(hours=1), POLICY, True, heard_until=T0) is None  # raised: stays


def state(at: datetime) -> AlertState:
    return AlertState("w", Status.FIRING, T0, None, T0, at, T0)


def updates(*sent: tuple[CorpusAlert, str, int]) -> list[tuple[object, AlertState]]:
    """Each alert of a notification (as firing or resolved) with its state last seen at a minute."""
    out = []
    for corpus_alert, status, minute in sent:
        body = payload([corpus_alert], status=status, starts_at=T0, ends_at=T0 if status == "resolved" else None)
        [decoded] = decode(json.dumps(body).encode()).alerts
        out.append((decoded, state(T0 + timedelta(minutes=minute))))
    return out


def test_an_arrival_is_a_firing_alert_the_matchers_select_at_its_last_seen() -> None:
    sent = updates((WATCHDOG, "firing", 0), (CRASH, "firing", 1), (WATCHDOG, "firing", 2), (WATCHDOG, "resolved", 3))
    assert arrived(Sightings(), sent, POLICY) == seen(0, 2)  # a resolved Watchdog is Prometheus gone, not alive
    assert arrived(Sightings(), updates((WATCHDOG, "firing", 0), (WATCHDOG, "firing", 0)), POLICY) == seen(0)
    crash = WatchdogPolicy(matchers=(parse('alertname="KubePodCrashLooping"'),))
    assert arrived(seen(-5), sent, crash) == seen(-5, 1)


def test_a_disabled_watchdog_is_never_armed_and_clears_its_alarm() -> None:
    off = WatchdogPolicy(enabled=False)
    assert not armed(seen(0, 1), off) and not missing(seen(0, 1), T0 + timedelta(days=1), off)
    assert verdict(Sightings(), T0, off, raised=True) == "clear"


async def test_ignored_alerts_are_stored_but_open_no_incident(store: SQLiteStore) -> None:
    proc = processor(store)
    await deliver(store, proc, T0, [WATCHDOG, INHIBITOR, CRASH])
    listed = await store.alerts(AlertQuery())
    assert sorted(a.labels["alertname"] for a in listed.alerts) == ["InfoInhibitor", "KubePodCrashLooping", "Watchdog"]
    [incident] = await store.incidents(IncidentQuery())
    assert incident.scope == "namespace:shop" and incident.firing == 1
    assert incident.services == {"shop/web"}


async def test_a_configured_ignore_list_replaces_the_default(store: SQLiteStore) -> None:
    proc = processor(store, IncidentPolicy(ignore=((parse('alertname="KubePodCrashLooping"'),),)))
    await deliver(store, proc, T0, [CRASH, INHIBITOR])
    [incident] = await store.incidents(IncidentQuery())
    assert incident.title == "InfoInhibitor in namespace shop"


PAGE_ON_ANYTHING = """
apiVersion: receiver/v1
kind: Playbook
metadata: {name: tell, description: Tell people of any alert of the shop.}
spec:
  trigger: {labels: ['alertname=~"InfoInhibitor|Watchdog|KubePodCrashLooping"']}
  steps:
    - {name: tell, action: notify, message: "{{ alert.labels.alertname }} fires"}
"""


@pytest.mark.parametrize(("ignore", "runs"), [(None, ["KubePodCrashLooping"]), ((), ["InfoInhibitor", "Watchdog"])])
async def test_ignored_alerts_trigger_no_playbook(
    store: SQLiteStore, tmp_path: Path, ignore: tuple[()] | None, runs: list[str]
) -> None:
    (tmp_path / "tell.yaml").write_text(PAGE_ON_ANYTHING)
    policy = IncidentPolicy() if ignore is None else IncidentPolicy(ignore=ignore)
    proc = processor(store, policy, Remediation.load([tmp_path], NamespacePolicy()))
    await deliver(store, proc, T0, [WATCHDOG, INHIBITOR] + ([CRASH] if ignore is None else []))
    planned = [await store.run(r.id) for r in await store.runs()]
    assert sorted(r.alert.labels["alertname"] for r in planned if r is not None) == runs


async def test_no_watchdog_ever_raises_nothing(store: SQLiteStore) -> None:
    proc = processor(store)
    await deliver(store, proc, T0, [CRASH])
    await proc.watch(T0 + timedelta(days=3))
    assert [i.title for i in await store.incidents(IncidentQuery())] == ["KubePodCrashLooping in namespace shop"]


async def test_a_missing_watchdog_opens_one_incident_until_it_comes_back(store: SQLiteStore) -> None:
    proc = processor(store)
    for minute in range(0, 30, 5):  # Alertmanager repeats it every 5 minutes
        await deliver(store, proc, T0 + timedelta(minutes=minute), [WATCHDOG])
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
    assert incident.scope == f"alert:{ALARM_FINGERPRINT}" and incident.services == {"service/alerting-pipeline"}

    restarted = processor(store)  # the alarm is in the store: a restart neither forgets nor repeats it
    restarted.cursor = await store.cursor()
    await restarted.watch(last + timedelta(hours=2))
    assert len(await store.incidents(IncidentQuery())) == 1

    back = last + timedelta(hours=3)
    await deliver(store, restarted, back, [WATCHDOG])
    await restarted.watch(back)
    [incident] = await store.incidents(IncidentQuery())
    assert incident.firing == 0 and incident.status is IncidentStatus.TRIGGERED
    await restarted.tick(back + timedelta(minutes=5))
    [incident] = await store.incidents(IncidentQuery())
    assert incident.status is IncidentStatus.RESOLVED
    found = await store.incident(incident.id, timeline_limit=50)
    assert found is not None
    assert any(e.text == "the Watchdog arrives again" for e in found[1])


async def test_a_watchdog_waiting_in_the_inbox_keeps_the_alarm_down(store: SQLiteStore) -> None:
    """Accepted while the engine was down (the web process takes it): no alarm raised only to be cleared."""
    proc = processor(store)
    for minute in (0, 2):
        await deliver(store, proc, T0 + timedelta(minutes=minute), [WATCHDOG])
    await store.accept(json.dumps(payload([WATCHDOG], starts_at=T0)).encode(), T0 + timedelta(minutes=11))
    await proc.watch(T0 + timedelta(minutes=12))
    assert not await store.incidents(IncidentQuery())
    await proc.drain()
    await proc.watch(T0 + timedelta(minutes=20, seconds=59))
    assert not await store.incidents(IncidentQuery())
    await proc.watch(T0 + timedelta(minutes=21))
    assert [i.title for i in await store.incidents(IncidentQuery())] == [
        "the alerting pipeline is down: no Watchdog since 2026-11-22T09:41:00Z"
    ]


async def test_the_watchdogs_severity_and_matchers_are_configurable(store: SQLiteStore) -> None:
    policy = WatchdogPolicy(matchers=(parse('alertname="InfoInhibitor"'),), severity=Severity.SEV1)
    proc = processor(store, IncidentPolicy(watchdog=policy))
    for minute in (0, 1):
        await deliver(store, proc, T0 + timedelta(minutes=minute), [INHIBITOR])
        await proc.watch(T0 + timedelta(minutes=minute))
    await proc.watch(T0 + timedelta(minutes=11))
    [incident] = await store.incidents(IncidentQuery())
    assert incident.severity is Severity.SEV1


async def test_a_watchdog_repeated_every_12_hours_never_raises_a_false_alarm(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """kube-prometheus-stack's repeat_interval, without a route of its own: it cannot tell an outage."""
    proc = processor(store)
    for hours in (0, 12, 24):
        arrival = T0 + timedelta(hours=hours)
        await deliver(store, proc, arrival, [WATCHDOG])
        for later in (0, 10, 60, 11 * 60):
            await proc.watch(arrival + timedelta(minutes=later))
            await proc.expire(arrival + timedelta(minutes=later))
    assert not await store.incidents(IncidentQuery())
    [watchdog] = (await store.alerts(AlertQuery())).alerts
    assert watchdog.state.status == "firing"  # not expired between repeats: expire_after is 36h
    assert "the dead man's switch is not armed" in caplog.text


async def test_the_watchdog_metrics_are_read_at_scrape_time(store: SQLiteStore) -> None:
    registry = CollectorRegistry()
    scrape = Scrape(Metrics(registry), store, lambda: 0, clock=lambda: T0)

    async def sample() -> tuple[float | None, float | None]:
        await scrape.handle(cast(web.Request, None))
        seen = registry.get_sample_value("receiver_watchdog_last_seen_timestamp_seconds")
        return seen, registry.get_sample_value("receiver_watchdog_missing")

    assert await sample() == (0, 0)  # never seen: not missing
    proc = processor(store)
    for minute in (0, 2):
        await deliver(store, proc, T0 + timedelta(minutes=minute), [WATCHDOG])
        await proc.watch(T0 + timedelta(minutes=minute))
    last = (T0 + timedelta(minutes=2)).timestamp()
    assert await sample() == (last, 0)
    await proc.watch(T0 + timedelta(minutes=12))
    assert await sample() == (last, 1)
    await deliver(store, proc, T0 + timedelta(minutes=13), [WATCHDOG])
    await proc.watch(T0 + timedelta(minutes=13))
    assert await sample() == ((T0 + timedelta(minutes=13)).timestamp(), 0)


class Watched(SQLiteStore):
    """The real store, counting the engine's looks at its inbox for the dead man's switch (one per cycle)."""

    looks = 0

    async def oldest_unprocessed(self) -> datetime | None:
        self.looks += 1
        return await super().oldest_unprocessed()


@asynccontextmanager
async def engine_on(settings: Settings, clock: Clock) -> AsyncIterator[tuple[Watched, Engine]]:
    """An engine started on ``settings``' data directory, at ``clock``; stopped, its store closed, on leaving."""
    store = Watched(settings.database_path)
    await store.open()
    engine = build(settings, store, clock=clock, report=lambda *_: None)
    engine.start()
    try:
        yield store, engine
    finally:
        await engine.stop()
        await store.close()


async def cycles(store: Watched, n: int) -> None:
    """Wait for the engine's upkeep to look at the switch ``n`` more times (the first may have begun already)."""
    until = store.looks + n

    async def done() -> bool:
        return store.looks >= until

    await eventually(done, f"{n} upkeep cycles", 20)


async def processed(engine: Engine, seq: int) -> None:
    """Wait for the engine to process the inbox up to ``seq``."""

    async def reached() -> bool:
        return engine.processor.cursor >= seq

    engine.processor.wake()
    await eventually(reached, f"inbox entry {seq} processed", 20)


async def test_an_armed_switch_stays_armed_across_a_restart_and_fires_at_its_deadline(
    make_settings: Callable[..., Settings],
) -> None:
    """Prometheus, Alertmanager and the daemon drained off a node together: the alarm is not a restart late."""
    settings = make_settings(alerts={"expiry_check_interval": "20ms"})
    clock = Clock(T0)
    async with engine_on(settings, clock) as (store, engine):
        for minute in (0, 2):  # Alertmanager repeats it every 2 minutes
            clock.now = T0 + timedelta(minutes=minute)
            await processed(
                engine, await store.accept(json.dumps(payload([WATCHDOG], starts_at=T0)).encode(), clock.now)
            )
        assert armed((await store.load_incidents(T0)).watchdog, POLICY)  # armed before
    last = T0 + timedelta(minutes=2)
    due = last + POLICY.missing_after

    clock.now = due - timedelta(seconds=1)  # the pipeline died with the daemon: nothing arrives any more
    async with engine_on(settings, clock) as (store, engine):
        await cycles(store, 2)
        assert not await store.incidents(IncidentQuery())  # still armed, not due yet
        clock.now = due
        [incident] = await eventually(lambda: store.incidents(IncidentQuery()), "the alarm", 20)
    assert incident.title == "the alerting pipeline is down: no Watchdog since 2026-11-22T09:32:00Z"
    assert incident.lifecycle.detected_at == due  # at the deadline, not a restart and two arrivals later

    clock.now = due + timedelta(hours=1)
    async with engine_on(settings, clock) as (store, engine):
        await cycles(store, 2)
        assert len(await store.incidents(IncidentQuery())) == 1  # raised once, across restarts too
