"""The database's job gauges for `/metrics`, as a snapshot kept in memory.

A scrape only reads this snapshot (O(1), no database work), so scrapes cannot queue behind or
starve requests however many arrive and however large the jobs table is. One task per process
refreshes it on a connection of its own (never one of the request pool's), every
METRICS_REFRESH_SECONDS, and waits at least ten times as long as the last refresh
took before the next one, so a large table costs the database at most a tenth of one connection.
METRICS_REFRESH_SECONDS=0 refreshes on scrape instead (concurrent scrapes share one refresh):
tests and single-user setups that want exact figures now.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import NullPool

from app.db import create_engine, utcnow
from app.errors import is_database_unavailable
from app.jobs import repository as jobs_repository
from app.jobs.models import JobStatus
from app.metrics import (
    FINAL_JOBS,
    JOBS,
    METRICS_SNAPSHOT_AGE,
    RECONCILER_BACKLOG,
    SUBMISSION_QUEUE,
)

log = structlog.get_logger(__name__)

# The refresh waits at least this many times as long as the last one took.
REFRESH_COST_FACTOR = 10


class JobGauges:
    """The jobs gauges, refreshed from the database by at most one query at a time."""

    def __init__(self, database_url: str, refresh_seconds: float) -> None:
        self.refresh_seconds = refresh_seconds
        # A connection of its own, opened per refresh (every METRICS_REFRESH_SECONDS) and closed
        # after: a slow refresh never holds one a request could use, and none idles in between.
        self._engine: AsyncEngine = create_engine(database_url, poolclass=NullPool)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self._refreshing: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._taken_at: float | None = None
        self._failing = False

    def start(self) -> None:
        """Refresh in the background (unless refreshing on scrape)."""
        if self.refresh_seconds > 0:
            self._loop_task = asyncio.create_task(self._run(), name="evolink-jobs-metrics")

    async def stop(self) -> None:
        """Stop refreshing and close the connection."""
        for task in (self._loop_task, self._refreshing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._engine.dispose()

    async def before_scrape(self) -> None:
        """Bring the gauges up to date when refreshing on scrape; otherwise do nothing."""
        if self.refresh_seconds == 0 or self._taken_at is None:
            # Only the very first scrape of a background-refreshed process waits (once).
            with contextlib.suppress(Exception):
                await self.refresh()
        if self._taken_at is not None:
            METRICS_SNAPSHOT_AGE.set(time.monotonic() - self._taken_at)

    async def refresh(self) -> None:
        """Read the gauges now; concurrent callers share one query."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._read())
        await asyncio.shield(self._refreshing)

    async def _read(self) -> None:
        async with self._sessions() as session:
            await _set_gauges(session)
        self._taken_at = time.monotonic()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.refresh()
            except Exception as exc:
                # An outage is the worker's and /readyz's to report (the snapshot's age shows
                # it here); anything else is a bug, logged once until a refresh works again.
                # Logged without a trace: a refresh cut short at shutdown or by a database
                # going away mid-query is not always classified as an outage.
                if not self._failing and not is_database_unavailable(exc):
                    log.error(
                        "metrics_refresh_failed",
                        error_type=type(exc).__name__,
                        error=str(exc)[:300],
                    )
                    self._failing = True
            else:
                self._failing = False
            took = time.monotonic() - started
            await asyncio.sleep(max(self.refresh_seconds, REFRESH_COST_FACTOR * took))


async def _set_gauges(session: AsyncSession) -> None:
    snapshot = await jobs_repository.job_statistics(session, utcnow())
    for status in JobStatus:
        JOBS.labels(status=status).set(snapshot.by_status.get(status, 0))
    FINAL_JOBS.clear()
    for (source, called_back), count in snapshot.final_by_source.items():
        FINAL_JOBS.labels(final_source=source, callback=str(called_back).lower()).set(count)
    RECONCILER_BACKLOG.set(snapshot.due)
    SUBMISSION_QUEUE.set(snapshot.waiting_to_submit)
