"""create_app(): lifespan, routers, error handlers, middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI

from app import health, metrics_endpoint
from app.archive import router as archive_router
from app.archive.store import ArchiveStore
from app.archive.worker import build_archive_worker
from app.callbacks import router as callbacks_router
from app.config import Settings, get_settings
from app.db import create_engine, create_read_session_factory, create_session_factory
from app.errors import install_error_handlers
from app.events import router as events_router
from app.events.waiters import Waiters
from app.evolink.client import build_http_client
from app.hot.database import HotDatabase
from app.hot.middleware import HotPaths
from app.jobs import router as jobs_router
from app.jobs.submission import Submitter
from app.logs import RequestContextMiddleware
from app.metrics_snapshot import JobGauges
from app.migrations import assert_database_at_head
from app.notifications import router as notifications_router
from app.notifications.worker import build_notification_worker
from app.server.failures import UnexpectedErrors
from app.server.limits import install_request_limits
from app.spend import router as spend_router
from app.spend.balance import BalanceWatch
from app.web import router as web_router
from app.worker.claims import release_claims
from app.worker.runner import build_worker

log = structlog.get_logger(__name__)


class SettingsMissing(Exception):
    """The settings needed to serve are not all set."""


def create_app(
    settings: Settings | None = None,
    *,
    run_worker: bool = True,
    evolink_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The evolink-jobs ASGI app, with its background worker unless `run_worker` is False.

    `evolink_transport` lets tests stand in for EvoLink.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        missing = settings.missing_for_serving()
        if missing:
            raise SettingsMissing(f"missing settings: {', '.join(missing)}")
        engine = create_engine(
            settings.database_url, pool_size=settings.database_pool_size, max_overflow=0
        )
        await assert_database_at_head(engine)
        http = build_http_client(
            settings.evolink_base_url, settings.evolink_timeout_seconds, evolink_transport
        )
        sessions = create_session_factory(engine)
        submitter = Submitter.from_settings(settings, http)
        hot_database = await HotDatabase.open(settings)
        worker = build_worker(settings, sessions, submitter, hot_database) if run_worker else None
        archive_store = ArchiveStore.from_settings(settings)
        archiver = build_archive_worker(settings, sessions, archive_store) if run_worker else None
        notifier = build_notification_worker(settings, sessions) if run_worker else None
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = sessions
        app.state.read_session_factory = create_read_session_factory(engine)
        app.state.hot_database = hot_database
        app.state.submitter = submitter
        app.state.signer = submitter.signer
        app.state.worker = worker
        app.state.archive_store = archive_store
        app.state.balance = BalanceWatch(submitter.evolink, settings.credits_warn_below)
        job_gauges = JobGauges(settings.database_url, settings.metrics_refresh_seconds)
        app.state.job_gauges = job_gauges
        job_gauges.start()
        waiters = app.state.waiters = Waiters(settings, app.state.read_session_factory)
        await waiters.start()
        app.state.notifier = notifier
        if await submitter.evolink.is_simulator():
            log.warning(
                "evolink_is_a_simulator",
                evolink_base_url=settings.evolink_base_url,
                message="EVOLINK_BASE_URL points at the EvoLink simulator: no real images. "
                "Never run production this way.",
            )
        if worker is not None and archiver is not None:
            worker.start()
            archiver.start()
        app.state.balance.start()
        if notifier is not None:
            notifier.start()
        log.info("started", evolink_base_url=settings.evolink_base_url, worker=run_worker)
        try:
            yield
        finally:
            if notifier is not None:
                await notifier.stop(settings.shutdown_timeout_seconds)
            if worker is not None and archiver is not None:
                await archiver.stop(settings.shutdown_timeout_seconds)
                await worker.stop(settings.shutdown_timeout_seconds)
            else:
                await release_claims(sessions, submitter.owner)
            await app.state.balance.stop()
            await waiters.stop()
            await job_gauges.stop()
            await http.aclose()
            if app.state.hot_database is not None:
                await app.state.hot_database.close()
            await engine.dispose()
            log.info("stopped")

    app = FastAPI(
        title="evolink-jobs",
        version="0.1.0",
        summary="Submit image-generation jobs to EvoLink and follow them to completion.",
        lifespan=lifespan,
    )
    app.add_middleware(HotPaths)  # innermost: the hot paths' answers pass every layer below
    app.add_middleware(UnexpectedErrors)  # a bug is logged once, in its request
    install_request_limits(app, settings)
    app.add_middleware(RequestContextMiddleware)  # outermost: refusals get a request id too
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs_router.router)
    app.include_router(events_router.router)
    app.include_router(archive_router.router)
    app.include_router(spend_router.router)
    app.include_router(notifications_router.router)
    app.include_router(callbacks_router.router)
    app.include_router(metrics_endpoint.router)
    web_router.install(app)
    return app
