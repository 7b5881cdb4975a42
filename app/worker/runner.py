"""The background worker loop: claim due jobs, act on them, and stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import utcnow
from app.hot import claims as hot_claims
from app.hot.database import HotDatabase, HotPathFailed
from app.jobs import idempotency
from app.jobs.models import Job
from app.jobs.submission import Submitter
from app.worker.actions import JobActions
from app.worker.claims import claim_due, release_claims
from app.worker.outage import OutageLog
from app.worker.shutdown import finish_in_flight

log = structlog.get_logger(__name__)

HOUSEKEEPING_INTERVAL_SECONDS = 60.0


class Worker:
    """Claims due jobs every `interval` seconds (or when woken) and handles them concurrently.

    When a tick fills every free place (`batch_size` jobs held at once), more may be due: once
    half the places are free again the loop wakes and claims another half batch, so a backlog
    drains as fast as the jobs are handled (for submissions, as fast as EvoLink accepts them,
    SUBMIT_CONCURRENCY at a time), not at `batch_size` per `interval`.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        actions: JobActions,
        *,
        interval: float,
        batch_size: int,
        idempotency_ttl: float,
    ) -> None:
        self.sessions = session_factory
        self.actions = actions
        self.interval = interval
        self.batch_size = batch_size
        self.idempotency_ttl = idempotency_ttl
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_housekeeping = 0.0
        self._more_due = False
        self.outage = OutageLog()

    @property
    def owner(self) -> str:
        return self.actions.owner

    def start(self) -> None:
        """Run the loop in the background of the current event loop."""
        self._loop_task = asyncio.create_task(self.run(), name="evolink-jobs-worker")

    def wake(self) -> None:
        """Look for due work now instead of at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        """Loop until stopped."""
        log.info("worker_started", owner=self.owner)
        while not self._stopping:
            await self.tick_reporting_failures()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()

    async def tick_reporting_failures(self) -> None:
        """One turn of the loop: failures are logged, not raised (an outage once, not per tick)."""
        try:
            await self.tick()
        except Exception as exc:
            if not self.outage.failed(exc):
                log.exception("worker_tick_failed")
        else:
            self.outage.succeeded()

    async def tick(self) -> int:
        """Claim what is due (up to the free capacity) and start handling it; how many."""
        capacity = self.batch_size - len(self._in_flight)
        if capacity <= 0:
            return 0
        jobs = await self._claim(capacity)
        self._more_due = len(jobs) == capacity
        for job in jobs:
            task = asyncio.create_task(self._handle(job))
            self._in_flight.add(task)
            task.add_done_callback(self._handled)
        await self._housekeeping()
        return len(jobs)

    async def _claim(self, capacity: int) -> Sequence[Job]:
        """Up to `capacity` due jobs, claimed over the hot pool when it is there."""
        now = utcnow()
        lease_until = self.actions.policy.lease_until(now)
        hot = self.actions.hot
        if hot is not None and hot.available:
            try:
                return await hot_claims.claim_due(hot, self.owner, now, lease_until, capacity)
            except HotPathFailed as failed:
                hot.step_aside(failed.error)  # the session path meets the outage, if it lasts
        async with self.sessions() as session:
            jobs = await claim_due(session, self.owner, now, lease_until, capacity)
            await session.commit()
        return jobs

    async def drain(self) -> None:
        """Wait for every job being handled (tests, and `tick` callers that want results)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming, let handlers finish for `grace_seconds`, then release every claim."""
        self._stopping = True
        self.wake()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await finish_in_flight(self._in_flight, grace_seconds)
        released = await release_claims(self.sessions, self.owner)  # never raises
        log.info("worker_stopped", owner=self.owner, released_claims=released)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._more_due and len(self._in_flight) <= self.batch_size // 2:
            # The last claim was full and half the places are free: claim again now, half a
            # batch in one statement rather than a job at a time.
            self.wake()

    async def _handle(self, job: Job) -> None:
        try:
            await self.actions.handle(job)
        except Exception as exc:
            if not self.outage.failed(exc):
                log.exception("job_action_failed", job_id=str(job.id))

    async def _housekeeping(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_housekeeping < HOUSEKEEPING_INTERVAL_SECONDS:
            return
        self._last_housekeeping = loop_time
        async with self.sessions() as session:
            purged = await idempotency.purge_expired(session, self.idempotency_ttl)
            await session.commit()
        if purged:
            log.info("idempotency_keys_purged", count=purged)


def build_worker(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    submitter: Submitter,
    hot: HotDatabase | None = None,
) -> Worker:
    """A worker configured from the settings; with `hot`, final answers to its polls are
    applied over the hot paths' pool (app/hot/applying.py)."""
    return Worker(
        sessions,
        JobActions(sessions, submitter, settings.out_of_credits_backoff_seconds, hot),
        interval=settings.worker_interval_seconds,
        batch_size=settings.worker_batch_size,
        idempotency_ttl=settings.idempotency_key_ttl_seconds,
    )
