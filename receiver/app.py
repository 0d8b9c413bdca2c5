"""The application factory: wires settings, store, ingestion and HTTP routes.

``create_app`` builds everything from explicit arguments; nothing is global.
Long-lived resources open in ``cleanup_ctx`` generators, so each is closed if
and only if it was opened, in reverse order: at shutdown aiohttp stops
listening and lets in-flight requests finish; then the upkeep loop stops, the
ingestor waits for the commits it admitted, the processor stops (the inbox
keeps what it did not reach) and the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CollectorRegistry

from receiver.config import Settings
from receiver.dedup import DedupPolicy, expiry_cutoff
from receiver.ingest import Ingestor
from receiver.metrics import Metrics
from receiver.processor import Processor
from receiver.store import Store, StoreError
from receiver.store.sqlite import SQLiteStore
from receiver.web import errors, health
from receiver.web.alerts_api import AlertsApi
from receiver.web.auth import Credentials
from receiver.web.scrape import Scrape
from receiver.web.webhook import WebhookHandler

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
PROCESSOR = web.AppKey("processor", Processor)
"""The app's processor, for tests that must wait until the inbox is processed."""


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock = utc_now,
    store: Store | None = None,
) -> web.Application:
    """Build the daemon's application. ``store`` replaces the SQLite store (tests)."""
    metrics = Metrics(registry or CollectorRegistry())
    app = web.Application(middlewares=[errors.middleware(metrics)], client_max_size=settings.webhook.max_body_bytes)
    if store is None:
        owned = SQLiteStore(
            settings.database_path,
            synchronous=settings.store.synchronous,
            busy_timeout=settings.store.busy_timeout,
            max_batch=settings.store.max_batch,
            on_commit=metrics.observe_commit,
        )
        app.cleanup_ctx.append(functools.partial(_opened, store=owned))
        store = owned
    policy = settings.alerts.policy()
    processor = Processor(store, policy=policy, metrics=metrics, batch_size=settings.store.process_batch)
    ingestor = Ingestor(
        store,
        processor,
        clock=clock,
        max_pending=settings.store.max_pending,
        max_backlog=settings.store.max_backlog,
    )
    _routes(app, settings, metrics, store, ingestor, policy, clock)
    app[PROCESSOR] = processor
    app.cleanup_ctx.append(
        functools.partial(
            _running,
            ingestor=ingestor,
            processor=processor,
            policy=policy,
            store=store,
            clock=clock,
            metrics=metrics,
            settings=settings,
        )
    )
    return app


def _routes(
    app: web.Application,
    settings: Settings,
    metrics: Metrics,
    store: Store,
    ingestor: Ingestor,
    policy: DedupPolicy,
    clock: Clock,
) -> None:
    webhook = WebhookHandler(
        ingestor, Credentials.for_webhook(settings.webhook), metrics, settings.webhook.max_body_bytes
    )
    alerts = AlertsApi(store, Credentials.for_api(settings.api), policy, clock)
    app.router.add_post("/api/v1/alerts", webhook.handle)
    app.router.add_get("/api/v1/alerts", alerts.list)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.Readiness(store).handle)
    app.router.add_get("/metrics", Scrape(metrics, store, lambda: ingestor.pending).handle)


async def _opened(_: web.Application, *, store: SQLiteStore) -> AsyncIterator[None]:
    await store.open()
    try:
        yield
    finally:
        await store.close()


async def _running(
    _: web.Application,
    *,
    ingestor: Ingestor,
    processor: Processor,
    policy: DedupPolicy,
    store: Store,
    clock: Clock,
    metrics: Metrics,
    settings: Settings,
) -> AsyncIterator[None]:
    processing = asyncio.create_task(processor.run(), name="processor")
    upkeep = asyncio.create_task(_upkeep_loop(store, policy, clock, metrics, settings), name="upkeep")
    _log_start(settings)
    try:
        yield
    finally:
        await _cancel(upkeep)
        await ingestor.close()
        await _cancel(processing)  # what is left in the inbox is processed at the next start


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _upkeep_loop(store: Store, policy: DedupPolicy, clock: Clock, metrics: Metrics, settings: Settings) -> None:
    """Expire silent alerts and prune old inbox entries, every expiry_check_interval."""
    while True:
        now = clock()
        try:
            expired = await store.expire(expiry_cutoff(now, policy), now)
            pruned = await store.prune_inbox(now - settings.store.inbox_retention)
        except StoreError as err:
            log.error("upkeep failed", extra={"error": str(err)})
        else:
            metrics.expired.inc(len(expired))
            for fingerprint in expired:
                log.info("alert expired: no update for %s", policy.expire_after, extra={"fingerprint": fingerprint})
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
