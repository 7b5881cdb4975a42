"""`evolink-jobs worker`: background work in a process of its own, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import signal

import structlog

from app.archive.store import ArchiveStore
from app.archive.worker import build_archive_worker
from app.config import Settings
from app.db import create_engine, create_session_factory
from app.evolink.client import build_http_client
from app.hot.database import HotDatabase
from app.jobs.submission import Submitter
from app.notifications.worker import build_notification_worker
from app.worker.runner import build_worker

log = structlog.get_logger(__name__)


async def run_worker_alone(settings: Settings) -> None:
    """Run the worker loop until a stop signal, then release claims and exit."""
    engine = create_engine(
        settings.database_url, pool_size=settings.database_pool_size, max_overflow=0
    )
    http = build_http_client(settings.evolink_base_url, settings.evolink_timeout_seconds)
    submitter = Submitter.from_settings(settings, http)
    sessions = create_session_factory(engine)
    hot = await HotDatabase.open(settings)
    worker = build_worker(settings, sessions, submitter, hot)
    archiver = build_archive_worker(settings, sessions, ArchiveStore.from_settings(settings))
    notifier = build_notification_worker(settings, sessions)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker.start()
    archiver.start()
    notifier.start()
    try:
        await stop.wait()
        log.info("worker_stopping")
    finally:
        await notifier.stop(settings.shutdown_timeout_seconds)
        await archiver.stop(settings.shutdown_timeout_seconds)
        await worker.stop(settings.shutdown_timeout_seconds)
        await http.aclose()
        if hot is not None:
            await hot.close()
        await engine.dispose()
