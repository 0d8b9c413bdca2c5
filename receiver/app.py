"""The application factory: wires settings, store, ingestion and HTTP routes.

``create_app`` builds everything from explicit arguments; nothing is global.
Processing runs in the engine process (``receiver.engine``) by default;
``engine="inline"`` runs it as a task of this process instead, for tests
that bring their own store or step processing themselves. Long-lived
resources open in ``cleanup_ctx`` generators, so each is closed if and only
if it was opened, in reverse order: at shutdown aiohttp stops listening and
lets in-flight requests finish; then the upkeep loop stops, the ingestor
waits for the commits it admitted, the engine stops (the inbox keeps what it
did not reach) and the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Literal

from aiohttp import web
from prometheus_client import CollectorRegistry

from receiver.alerts.dedup import DedupPolicy
from receiver.clock import Clock, utc_now
from receiver.config import Settings
from receiver.engine.admission import Consumer, Ingestor
from receiver.engine.builder import Engine, build
from receiver.engine.process import EngineProcess
from receiver.engine.processor import Processor
from receiver.engine.runner import Runner
from receiver.kube import Kube
from receiver.metrics import Metrics
from receiver.notify.channels.pagerduty import PagerDutySettings
from receiver.notify.channels.slack import SlackSettings
from receiver.notify.http import Http
from receiver.notify.slack_actions import origin
from receiver.playbooks.model import load_dirs
from receiver.store import Backend, InboxStore, Store, StoreError, backends
from receiver.timer import REAL, Timer
from receiver.web import errors, health, openapi, slack_socket
from receiver.web.alerts_api import AlertsApi
from receiver.web.auth import Credentials
from receiver.web.calendar_api import CalendarApi
from receiver.web.connections import ConnectionGuard, GuardMetrics, Limits, fitted
from receiver.web.incidents_api import IncidentCommands, IncidentsApi
from receiver.web.links import LinkPages
from receiver.web.pagerduty_webhooks import PagerDutyWebhooks
from receiver.web.runs_api import RunCommands, RunsApi
from receiver.web.scrape import Scrape
from receiver.web.slack_interactions import ResponseUrl, SlackInteractions
from receiver.web.slack_socket import SocketMode
from receiver.web.webhook import WebhookHandler

log = logging.getLogger(__name__)
PROCESSOR = web.AppKey("processor", Processor)
"""The app's processor when it runs inline, for tests that must wait until the inbox is processed."""
RUNNER = web.AppKey("runner", Runner)
"""The app's runner when processing runs inline, for tests that wait for runs to end."""
GUARD = web.AppKey("guard", ConnectionGuard)
"""What bounds the app's connections and the time to send a request; ``receiver.web.serving`` listens through it."""
RESPONSE_SECONDS = 5.0
"""How long an answer to a Slack click may take to post to its ``response_url``."""
ENGINE_STOP_SECONDS = 5.0
"""How long the engine may take to finish its step at shutdown before it is killed."""


def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock = utc_now,
    store: Store | None = None,
    engine: Literal["process", "inline"] = "process",
    kube: Kube | None = None,
    timer: Timer = REAL,
) -> web.Application:
    """Build the daemon's application. ``store`` replaces the configured backend (tests; ``engine="inline"``).

    ``timer``: the engine's for playbook steps (a ``VirtualTimer`` in tests: waits pass at once).
    """
    if store is not None and engine == "process":
        raise ValueError("the engine process opens the SQLite store itself: a store passed in needs engine='inline'")
    metrics = Metrics(registry or CollectorRegistry())
    guard = _guard(settings)
    app = web.Application(
        middlewares=[errors.middleware(metrics), guard.middleware()], client_max_size=settings.webhook.max_body_bytes
    )
    app[GUARD] = guard
    metrics.registry.register(GuardMetrics(guard))
    if store is None:
        owned = backends.create(
            settings, role="web" if engine == "process" else "all", on_commit=metrics.observe_commit
        )
        app.cleanup_ctx.append(functools.partial(_opened, store=owned))
        store = owned
    policy = settings.alerts.policy()
    run: functools.partial[AsyncIterator[None]]
    if engine == "inline":
        inline = build(settings, store, clock=clock, kube=kube, report=lambda _, t: metrics.add(t), timer=timer)
        processor, runner = app[PROCESSOR], app[RUNNER] = inline.processor, inline.runner
        playbooks = inline.playbooks
        ingestor = _ingestor(settings, store, processor, clock)
        run = functools.partial(_inline, engine=inline, ingestor=ingestor, store=store, clock=clock, settings=settings)
    else:
        engine_process = EngineProcess(settings, metrics, clock=clock, timer=timer)
        # Their names only, for /metrics: the engine loads them to run them, and logs their problems.
        playbooks = [p.name for p in load_dirs(settings.remediation.playbook_dirs).playbooks]
        ingestor = _ingestor(settings, store, engine_process, clock)
        run = functools.partial(
            _engine_process, engine=engine_process, ingestor=ingestor, store=store, clock=clock, settings=settings
        )
    commands = (processor, runner) if engine == "inline" else (engine_process, engine_process)
    interactions = _routes(app, settings, metrics, store, ingestor, policy, clock, *commands, playbooks=playbooks)
    app.cleanup_ctx.append(run)
    _socket_mode(app, settings, interactions)  # after the engine: its clicks need it running
    return app


def _ingestor(settings: Settings, store: Store, consumer: Consumer, clock: Clock) -> Ingestor:
    return Ingestor(
        store,
        consumer,
        clock=clock,
        max_pending=settings.store.max_pending,
        max_backlog=settings.store.max_backlog,
    )


def _routes(
    app: web.Application,
    settings: Settings,
    metrics: Metrics,
    store: Store,
    ingestor: Ingestor,
    policy: DedupPolicy,
    clock: Clock,
    commands: IncidentCommands,
    run_commands: RunCommands,
    *,
    playbooks: list[str],
) -> SlackInteractions:
    """``playbooks``: the names of the loaded playbooks, whose circuit breakers /metrics reports.

    Returns what takes Slack's clicks (Socket Mode connections use it too)."""
    webhook = WebhookHandler(
        ingestor, Credentials.for_webhook(settings.webhook), metrics, settings.webhook.max_body_bytes
    )
    alerts = AlertsApi(store, Credentials.for_api(settings.api), policy, clock)
    app.router.add_post("/api/v1/alerts", webhook.handle)
    app.router.add_get("/api/v1/alerts", alerts.list)
    IncidentsApi(store, commands, Credentials.for_api(settings.api)).add_routes(app.router)
    LinkPages(store, commands, settings.oncall.links.keyring(), clock).add_routes(app.router)
    RunsApi(store, run_commands, Credentials.for_api(settings.api)).add_routes(app.router)
    interactions = _interactions(app, settings, clock, commands, run_commands)
    schedules, people = settings.oncall.schedule_values(), frozenset(settings.oncall.people)
    CalendarApi(schedules, people, Credentials.for_api(settings.api), clock).add_routes(app.router)
    app.router.add_get("/api/v1/openapi.yaml", openapi.document)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.Readiness(store, clock, settings.engine.stall_after).handle)
    limits = settings.remediation.guardrails.limits()
    incidents = settings.incidents.policy()
    scrape = Scrape(metrics, store, lambda: ingestor.pending, playbooks, limits, clock, incidents, schedules)
    metrics.channels(sorted(settings.notify.channels))
    if settings.notify.channels:
        metrics.policies(sorted(settings.oncall.policy_values()))
    app.router.add_get("/metrics", scrape.handle)
    return interactions


def _interactions(
    app: web.Application, settings: Settings, clock: Clock, commands: IncidentCommands, run_commands: RunCommands
) -> SlackInteractions:
    """Slack's button clicks and PagerDuty's webhooks: answered 403 until their secrets are configured."""
    channels = settings.notify.channels.values()
    people = settings.oncall.people.items()
    slack = [c for c in channels if isinstance(c, SlackSettings)]
    interactive = [c for c in slack if c.interactive]
    http = Http(timeout=RESPONSE_SECONDS)  # for the answers to clicks, posted to their response_url
    app.cleanup_ctx.append(functools.partial(_closing, http=http))
    interactions = SlackInteractions(
        [c.signing_secret.get_secret_value() for c in interactive if c.signing_secret],
        {p.slack_user: name for name, p in people if p.slack_user},
        commands,
        run_commands,
        clock,
        respond=ResponseUrl(http),
        origins=[origin(c.api_url) for c in interactive],
    )
    app.router.add_post("/api/v1/slack/interactions", interactions.handle)
    paging = [c for c in channels if isinstance(c, PagerDutySettings)]
    webhooks = PagerDutyWebhooks(
        [c.webhook_secret.get_secret_value() for c in paging if c.webhook_secret],
        {p.pagerduty_user: name for name, p in people if p.pagerduty_user},
        commands,
    )
    app.router.add_post("/api/v1/pagerduty/webhooks", webhooks.handle)
    return interactions


def _socket_mode(app: web.Application, settings: Settings, interactions: SlackInteractions) -> None:
    """A Socket Mode connection per Slack app with an app-level token, opened once the engine runs."""
    slack = [c for c in settings.notify.channels.values() if isinstance(c, SlackSettings)]
    apps = {(c.api_url, c.app_token.get_secret_value()) for c in slack if c.app_token}
    for api_url, app_token in sorted(apps):
        socket = SocketMode(api_url, app_token, interactions)
        app.cleanup_ctx.append(functools.partial(slack_socket.running, socket=socket))


async def _closing(_: web.Application, *, http: Http) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await http.close()


async def _opened(_: web.Application, *, store: Backend) -> AsyncIterator[None]:
    await store.open()
    try:
        yield
    finally:
        await store.close()


async def _inline(
    _: web.Application, *, engine: Engine, ingestor: Ingestor, store: Store, clock: Clock, settings: Settings
) -> AsyncIterator[None]:
    engine.start()
    prune = asyncio.create_task(_prune_loop(store, clock, settings), name="prune")
    _log_start(settings)
    try:
        yield
    finally:
        await _cancel(prune)
        await engine.stop(before_processing=ingestor.close)  # the inbox keeps what it did not reach


async def _engine_process(
    _: web.Application, *, engine: EngineProcess, ingestor: Ingestor, store: Store, clock: Clock, settings: Settings
) -> AsyncIterator[None]:
    await engine.start(await store.cursor())
    prune = asyncio.create_task(_prune_loop(store, clock, settings), name="prune")
    _log_start(settings)
    try:
        yield
    finally:
        await _cancel(prune)
        await ingestor.close()
        await engine.close(ENGINE_STOP_SECONDS)  # what is left in the inbox is processed at the next start


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _prune_loop(store: InboxStore, clock: Clock, settings: Settings) -> None:
    """Delete processed inbox entries older than the retention, every expiry_check_interval."""
    while True:
        try:
            pruned = await store.prune_inbox(clock() - settings.store.inbox_retention)
        except StoreError as err:
            log.error("inbox pruning failed", extra={"error": str(err)})
        else:
            if pruned:
                log.info("pruned %d processed inbox entries", pruned)
        await asyncio.sleep(settings.alerts.expiry_check_interval.total_seconds())


def _log_start(settings: Settings) -> None:
    auth = Credentials.for_webhook(settings.webhook)
    log.info(
        "receiver ready",
        extra={
            "listen": str(settings.listen),
            "tls": settings.tls is not None,
            "store": str(settings.database_path),
            "webhook_auth": auth.required,
        },
    )
    if not auth.required and settings.listen.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("the webhook accepts unauthenticated requests on %s", settings.listen)
    links_off = settings.oncall.links.off_because(settings.notify.external_url)
    if links_off:
        log.info(links_off)


def _guard(settings: Settings) -> ConnectionGuard:
    server = settings.server
    limits = Limits(server.max_connections, server.header_timeout.total_seconds(), server.body_timeout.total_seconds())
    return ConnectionGuard(fitted(limits))
