"""``python -m bench.notifications``: how soon a new incident reaches Slack and PagerDuty, and an alert storm.

A real ``receiver serve`` (web and engine processes, SQLite with ``synchronous: full``, the webhook
and API tokens set, the shipped playbooks unless ``--no-playbooks``) notifies the Slack and PagerDuty
fakes of tests/fakes, served by this process on 127.0.0.1 with their documented rate limits on:
Slack's chat.postMessage about one message a second per channel (a burst of 3 tolerated, then HTTP
429), PagerDuty's 120 events a minute per routing key. Alerts are kube-prometheus-stack's
(tests/corpus), re-valued, in the bodies Alertmanager sends.

- **latency**: ``--rounds`` webhook bodies, ``--spacing`` seconds apart, each one crash-looping pod in
  a namespace never seen: each opens a new incident. A route per namespace sends it to PagerDuty and
  to a Slack channel of its own (``slack:C…``), so Slack's pace of one message a second per channel,
  which the sender keeps, is not what is measured. The time is from just before the POST (the fakes
  record each request's arrival on the same clock) to the first request at each fake for that incident
  (Slack: its chat.postMessage; PagerDuty: its trigger). Targets: p50 <= 100 ms, p99 <= 500 ms. The
  rounds begin once a warm-up alert (routed nowhere) is processed: ``/readyz`` answers as soon as the
  web process accepts webhooks, about a second before the engine has started.
- **storm**: ``--alerts`` alerts over ``--namespaces`` namespaces (``--deployments`` each, one by
  default: a service per namespace, its pods crash-looping) starting at random moments over
  ``--seconds``, delivered as Alertmanager's dispatcher would deliver them when grouping by namespace: a
  group's first notification ``--group-wait`` after its first alert, then one every ``--group-interval``
  while it changed, each carrying every alert of the group so far. Every incident goes to PagerDuty and
  to one Slack channel (the shared incident channel: all of them are paced together there). Printed:
  the calls each fake received and per incident, HTTP 429s, the most chat.postMessage calls in any
  second, Slack's replies by event, the cores each process used, and the delay of the last update (the
  last webhook answered -> the last request at each fake, once the outbox is empty).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.hostile import _percentile
from bench.run import _cpu_seconds, receiver_serving, scratch
from receiver.clock import utc_now
from tests.corpus import CorpusAlert, alert, payload
from tests.fakes.pagerduty import ENQUEUE, PagerDutyFake
from tests.fakes.server import FakeServer, Recorded
from tests.fakes.slack import SlackFake

WEBHOOK_TOKEN = "bench-webhook-token"
API_TOKEN = "bench-api-token"
ROUTING_KEY = "B3NCHR0UT1NGKEY00000000000000001"
INCIDENT_CHANNEL = "C0INCIDENTS"
POST = "/api/chat.postMessage"
UPDATE = "/api/chat.update"
SHIPPED_PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"
STARTS_AT = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
"""When the alerts started firing (Alertmanager's ``startsAt``): before the run, as for any real alert."""


SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""What Kubernetes makes a pod name's random suffix of: pods so named are their deployment's (one service)."""


def crash(namespace: str, n: int, deployment: str = "api") -> CorpusAlert:
    """Pod ``n`` of ``deployment`` in ``namespace``, crash-looping (kube-prometheus-stack's alert)."""
    suffix = "".join(SUFFIX_ALPHABET[n // len(SUFFIX_ALPHABET) ** k % len(SUFFIX_ALPHABET)] for k in range(5))
    pod = f"{deployment}-7d4b9c6f5-{suffix}"
    return alert("KubePodCrashLooping", namespace=namespace, pod=pod, container=deployment)


def body(alerts: Sequence[CorpusAlert]) -> bytes:
    """The webhook body Alertmanager sends for one group (one namespace)."""
    return json.dumps(payload(alerts, starts_at=STARTS_AT)).encode()


# -- the receiver ---------------------------------------------------------------------------------------


@dataclass
class Fakes:
    """The providers the receiver notifies, in this process."""

    slack: SlackFake
    pagerduty: PagerDutyFake

    def channels(self, kinds: Sequence[str]) -> dict[str, Any]:
        """``notify.channels`` for the fakes of ``kinds``."""
        configured = {
            "slack": self.slack.channel_settings(INCIDENT_CHANNEL),
            "pagerduty": self.pagerduty.channel_settings(ROUTING_KEY),
        }
        return {kind: configured[kind] for kind in kinds}


@contextlib.asynccontextmanager
async def fakes() -> AsyncIterator[Fakes]:
    """Slack (the incident channel known) and PagerDuty (the routing key known), rate limits on."""
    async with SlackFake() as slack, PagerDutyFake(routing_keys=[ROUTING_KEY]) as pagerduty:
        slack.add_channel(INCIDENT_CHANNEL, "incidents")
        yield Fakes(slack, pagerduty)


@dataclass(frozen=True)
class Receiver:
    """A running ``receiver serve``."""

    url: str
    pid: int

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def cpu_seconds(self) -> tuple[float, float, float]:
        """CPU seconds so far of this process (the fakes, the generator), the web process and the engine."""
        engines = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return _cpu_seconds(os.getpid()), _cpu_seconds(self.pid), sum(_cpu_seconds(int(p)) for p in engines)


@contextlib.asynccontextmanager
async def serving(workdir: Path, notify: dict[str, Any], playbooks: bool) -> AsyncIterator[Receiver]:
    """``receiver serve`` as deployed (the shipped playbooks unless not ``playbooks``) notifying as ``notify`` says."""
    remediation = {"playbook_dirs": [str(SHIPPED_PLAYBOOKS)] if playbooks else []}
    config = {"log_level": "warning", "store": {"synchronous": "full"}, "remediation": remediation, "notify": notify}
    env = {**os.environ, "RECEIVER_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "RECEIVER_API_TOKEN": API_TOKEN}
    async with receiver_serving(workdir, config, env) as (url, proc):
        yield Receiver(url, proc.pid)


async def post(http: aiohttp.ClientSession, receiver: Receiver, data: bytes) -> None:
    """One webhook, as Alertmanager posts it; it must be accepted."""
    headers = {**receiver.auth(WEBHOOK_TOKEN), "Content-Type": "application/json"}
    async with http.post(receiver.url + "/api/v1/alerts", data=data, headers=headers) as answer:
        if answer.status != 200:
            raise RuntimeError(f"the webhook was answered {answer.status}: {await answer.text()}")


async def first(
    fake: FakeServer, wanted: Callable[[Recorded], bool], since: int, seconds: float = 10.0
) -> Recorded | None:
    """The first request ``fake`` received after its ``since`` first that ``wanted`` names (None after ``seconds``).

    Polled: the time taken is the request's arrival as the fake recorded it, not when this looks.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = next((r for r in fake.requests[since:] if wanted(r)), None)
        if found is not None:
            return found
        await asyncio.sleep(0.002)
    return None


# -- latency --------------------------------------------------------------------------------------------


def latency_routes(namespaces: Sequence[str], kinds: Sequence[str]) -> list[dict[str, Any]]:
    """A route per namespace: PagerDuty, and a Slack channel of the namespace's own."""
    return [
        {
            "name": ns,
            "matchers": [f'namespace="{ns}"'],
            "channels": [f"slack:{slack_channel(ns)}" if kind == "slack" else kind for kind in kinds],
        }
        for ns in namespaces
    ]


def slack_channel(namespace: str) -> str:
    """The Slack channel id of a namespace's incidents (latency)."""
    return "C0" + namespace.upper().replace("-", "")


def is_first_for(kind: str, namespace: str) -> Callable[[Recorded], bool]:
    """Whether a request at ``kind``'s fake is the first news of ``namespace``'s incident."""
    if kind == "slack":
        return lambda r: (
            r.path == POST and isinstance(r.body, dict) and r.body.get("channel") == slack_channel(namespace)
        )
    return lambda r: r.path == ENQUEUE and f"{namespace}/".encode() in r.raw


async def latency(args: argparse.Namespace, workdir: Path) -> bool:
    """Measure, print; whether the targets were met with nothing missing."""
    namespaces = [f"lat-{i:04d}" for i in range(args.rounds)]
    async with fakes() as fake:
        for ns in namespaces:
            fake.slack.add_channel(slack_channel(ns), ns)
        notify = {"channels": fake.channels(args.channels), "routes": latency_routes(namespaces, args.channels)}
        async with serving(workdir, notify, args.playbooks) as receiver, aiohttp.ClientSession() as http:
            await post(http, receiver, body([crash("warm-up", 0)]))  # routed nowhere: once processed, the engine is up
            await drained(http, receiver, 30)
            took, accepted = await rounds(args, http, receiver, fake, namespaces)
    return latency_report(args, took, accepted)


async def rounds(
    args: argparse.Namespace, http: aiohttp.ClientSession, receiver: Receiver, fake: Fakes, namespaces: list[str]
) -> tuple[dict[str, list[float | None]], list[float]]:
    """Open an incident per namespace: (channel -> ms to its first request, None if none came), ms to each 200."""
    took: dict[str, list[float | None]] = {kind: [] for kind in args.channels}
    accepted: list[float] = []
    for n, ns in enumerate(namespaces):
        await asyncio.sleep(args.spacing)
        servers: dict[str, FakeServer] = {kind: getattr(fake, kind) for kind in args.channels}
        before = {kind: len(server.requests) for kind, server in servers.items()}
        sent = utc_now()
        await post(http, receiver, body([crash(ns, n)]))
        accepted.append((utc_now() - sent).total_seconds() * 1000)
        for kind, server in servers.items():
            found = await first(server, is_first_for(kind, ns), before[kind])
            took[kind].append(None if found is None else (found.at - sent).total_seconds() * 1000)
    return took, accepted


def latency_report(args: argparse.Namespace, took: dict[str, list[float | None]], accepted: list[float]) -> bool:
    """Print the table; whether the targets were met with nothing missing."""
    print(
        f"latency: {args.rounds} new incidents, {args.spacing:g}s apart; webhook answered: p50 "
        f"{_percentile(accepted, 0.5):.1f} ms, p99 {_percentile(accepted, 0.99):.1f} ms"
    )
    print("| channel | first request | p50 | p99 | max | missing |")
    print("|---|---|---|---|---|---|")
    met = True
    for kind, found in took.items():
        ms = [t for t in found if t is not None]
        missing = len(found) - len(ms)
        what = "chat.postMessage" if kind == "slack" else "trigger (POST /v2/enqueue)"
        p50, p99 = (_percentile(ms, 0.5), _percentile(ms, 0.99)) if ms else (float("nan"), float("nan"))
        peak = max(ms, default=float("nan"))
        print(f"| {kind} | {what} | {p50:.1f} ms | {p99:.1f} ms | {peak:.1f} ms | {missing} |")
        met = met and not missing and p50 <= 100 and p99 <= 500
    print(f"targets p50 <= 100 ms, p99 <= 500 ms: {'MET' if met else 'MISSED'}")
    return met


# -- storm ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A notification Alertmanager's dispatcher would send: when (seconds from the start), and its body."""

    at: float
    namespace: str
    alerts: tuple[CorpusAlert, ...]


@dataclass(frozen=True)
class Storm:
    """What fires: ``alerts`` pods crash-looping over ``namespaces``, each namespace's over ``deployments``."""

    alerts: int
    namespaces: int
    deployments: int
    seconds: float
    """The alerts start at random moments within this."""
    group_wait: float
    group_interval: float

    def alert(self, i: int) -> CorpusAlert:
        """Alert ``i``: a pod of namespace ``i % namespaces``, of one of its deployments in turn."""
        n = i // self.namespaces
        deployment = "api" if self.deployments == 1 else f"api{n % self.deployments:02d}"
        return crash(f"storm-{i % self.namespaces:03d}", n, deployment)


def storm_plan(storm: Storm, seed: int = 1) -> list[Delivery]:
    """The notifications of a storm, in time order: each group (namespace) flushed as Alertmanager does. Pure.

    A group sends ``group_wait`` after its first alert, then every ``group_interval`` while it gained alerts,
    each time every alert of the group so far.
    """
    rng = random.Random(seed)
    starts: dict[str, list[tuple[float, CorpusAlert]]] = {}
    for i in range(storm.alerts):
        fired = storm.alert(i)
        starts.setdefault(fired.labels["namespace"], []).append((rng.uniform(0, storm.seconds), fired))
    plan: list[Delivery] = []
    for ns, timed in starts.items():
        timed.sort(key=lambda t: t[0])
        flush, sent = timed[0][0] + storm.group_wait, 0
        while sent < len(timed):
            firing = [a for at, a in timed if at <= flush]
            if len(firing) > sent:
                plan.append(Delivery(flush, ns, tuple(firing)))
                sent = len(firing)
            flush += storm.group_interval
    return sorted(plan, key=lambda d: d.at)


async def inbox_backlog(http: aiohttp.ClientSession, receiver: Receiver) -> float:
    """Webhooks accepted and not processed yet (``receiver_inbox_backlog``)."""
    async with http.get(receiver.url + "/metrics") as scraped:
        for line in (await scraped.text()).splitlines():
            if line.startswith("receiver_inbox_backlog "):
                return float(line.split()[1])
    raise RuntimeError("receiver_inbox_backlog is not exported")


async def drained(http: aiohttp.ClientSession, receiver: Receiver, seconds: float = 600.0) -> None:
    """Once the inbox is processed and no notification is pending or being sent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        backlog = await inbox_backlog(http, receiver)
        waiting = 0
        for state in ("pending", "sending"):
            query = f"/api/v1/notifications?state={state}&limit=1"
            async with http.get(receiver.url + query, headers=receiver.auth(API_TOKEN)) as listed:
                waiting += len((await listed.json())["notifications"])
        if not backlog and not waiting:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"notifications still waiting after {seconds:g}s")


def per_second(requests: Sequence[Recorded]) -> int:
    """The most of ``requests`` that arrived within any one second. Pure."""
    times = sorted(r.at for r in requests)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= timedelta(seconds=1):
            start += 1
        most = max(most, end - start + 1)
    return most


async def storm(args: argparse.Namespace, workdir: Path) -> bool:
    """Run the storm, print what each fake received; whether Slack's rate held and nothing was refused."""
    kinds = args.channels
    storm = Storm(args.alerts, args.namespaces, args.deployments, args.seconds, args.group_wait, args.group_interval)
    plan = storm_plan(storm)
    async with fakes() as fake:
        notify = {"channels": fake.channels(kinds), "routes": [{"name": "everyone", "channels": list(kinds)}]}
        async with serving(workdir, notify, args.playbooks) as receiver, aiohttp.ClientSession() as http:
            cpu, began = receiver.cpu_seconds(), time.monotonic()
            for delivery in plan:
                await asyncio.sleep(max(0.0, began + delivery.at - time.monotonic()))
                await post(http, receiver, body(delivery.alerts))
            last_webhook = utc_now()
            await drained(http, receiver)
            cores = [(b - a) / (time.monotonic() - began) for a, b in zip(cpu, receiver.cpu_seconds(), strict=True)]
            async with http.get(receiver.url + "/api/v1/incidents?limit=500", headers=receiver.auth(API_TOKEN)) as got:
                incidents = len((await got.json())["incidents"])
    timing = f"group_wait {args.group_wait:g}s, group_interval {args.group_interval:g}s"
    print(
        f"storm: {args.alerts:,} alerts over {args.namespaces} namespaces ({args.deployments} deployments each) in"
        f" {args.seconds:g}s; {len(plan)} webhook"
        f" notifications ({timing}); {incidents} incidents; playbooks {'shipped' if args.playbooks else 'none'}"
    )
    print(
        f"cores used until the outbox was empty: this process {cores[0]:.2f}, web {cores[1]:.2f}, engine {cores[2]:.2f}"
    )
    ok = True
    if "slack" in kinds:
        ok = _slack_report(fake.slack, incidents, last_webhook) and ok
    if "pagerduty" in kinds:
        ok = _pagerduty_report(fake.pagerduty, incidents, last_webhook) and ok
    return ok


def _after(last: datetime, last_webhook: datetime) -> str:
    """How long after the last webhook the last request came (or that none came after it)."""
    delay = (last - last_webhook).total_seconds()
    return f"{delay:.1f}s" if delay >= 0 else f"none after it (the last came {-delay:.1f}s before)"


def _slack_report(slack: SlackFake, incidents: int, last_webhook: datetime) -> bool:
    posts = slack.received(POST)
    top = [r for r in posts if isinstance(r.body, dict) and not r.body.get("thread_ts")]
    updates = slack.received(UPDATE)
    limited = [r for r in slack.requests if r.status == 429]
    calls = len(slack.requests)
    last = max(r.at for r in slack.requests)
    print(
        f"slack: {calls} calls ({len(top)} chat.postMessage of an incident's message, {len(posts) - len(top)}"
        f" replies in threads, {len(updates)} chat.update, {calls - len(posts) - len(updates)} other);"
        f" {calls / max(incidents, 1):.1f} per incident"
    )
    print(
        f"slack: HTTP 429 answers: {len(limited)}; most chat.postMessage in any second: {per_second(posts)}; "
        f"most calls in any second: {per_second(slack.requests)}"
    )
    replies = collections.Counter(event_of(r) for r in posts if r not in top)
    print(f"slack: replies by event: {', '.join(f'{e} {n}' for e, n in replies.most_common()) or 'none'}")
    print(f"slack: last webhook answered -> last request: {_after(last, last_webhook)}")
    return not limited and len(top) == incidents


def event_of(post: Recorded) -> str:
    """The signal a chat.postMessage tells, from its metadata's idempotency key (``INC-…/run_blocked@…/slack``)."""
    key = str(post.body["metadata"]["event_payload"]["key"]) if isinstance(post.body, dict) else ""
    return key.split("/")[1].split("@")[0] if key.count("/") >= 2 else "?"


def _pagerduty_report(pagerduty: PagerDutyFake, incidents: int, last_webhook: datetime) -> bool:
    events = pagerduty.received(ENQUEUE)
    limited = [r for r in events if r.status == 429]
    last = max(r.at for r in events)
    print(
        f"pagerduty: {len(events)} events ({pagerduty.pages()} alerts opened), {len(events) / max(incidents, 1):.1f} "
        f"per incident; HTTP 429 answers: {len(limited)}; last webhook answered -> last request: "
        f"{_after(last, last_webhook)}"
    )
    return not limited and pagerduty.pages() == incidents


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notifications", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=("latency", "storm", "both"), default="both")
    parser.add_argument(
        "--channels",
        type=lambda s: s.split(","),
        default=["slack", "pagerduty"],
        help="comma-separated: slack, pagerduty",
    )
    parser.add_argument(
        "--no-playbooks",
        dest="playbooks",
        action="store_false",
        help="no playbooks (default: the shipped ones, as deployed)",
    )
    parser.add_argument("--rounds", type=int, default=100, help="latency: new incidents")
    parser.add_argument("--spacing", type=float, default=0.2, help="latency: seconds between them")
    parser.add_argument("--alerts", type=int, default=1000, help="storm: alerts")
    parser.add_argument("--namespaces", type=int, default=50, help="storm: namespaces they are spread over")
    parser.add_argument("--deployments", type=int, default=1, help="storm: deployments (services) per namespace")
    parser.add_argument("--seconds", type=float, default=120.0, help="storm: how long the alerts take to start")
    parser.add_argument("--group-wait", type=float, default=10.0, help="storm: Alertmanager's group_wait")
    parser.add_argument("--group-interval", type=float, default=10.0, help="storm: Alertmanager's group_interval")
    args = parser.parse_args()
    ok = True
    for what in ("latency", "storm"):
        if args.what in (what, "both"):
            with scratch(f"notifications-{what}") as workdir:
                ok = asyncio.run(latency(args, workdir) if what == "latency" else storm(args, workdir)) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
