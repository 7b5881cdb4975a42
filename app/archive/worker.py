"""Background archive work: claim due images (under a lease), download, store, record.

Its own loop and its own claimable rows (archive_images), beside the jobs worker: a process
that runs background work runs both. A killed process's images are taken over when its lease
lapses; nothing is lost on restart, since every step is recorded in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.archive import repository, retention
from app.archive import service as archive_service
from app.archive.download import Downloader, DownloadFailed, build_source_client, make_thumbnail
from app.archive.models import ArchiveImage
from app.archive.store import ArchiveStore
from app.config import Settings
from app.db import utcnow
from app.jobs.policy import process_identity
from app.metrics import ARCHIVE_BYTES, ARCHIVE_IMAGES, ARCHIVE_LAG
from app.worker.outage import OutageLog
from app.worker.shutdown import finish_in_flight, release_at_shutdown

log = structlog.get_logger(__name__)

START_BATCH = 50
HOUSEKEEPING_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class ArchivePolicy:
    """How archive work is paced."""

    lease_seconds: float
    backoff_initial_seconds: float
    backoff_max_seconds: float
    retention_days: float | None

    def retry_at(self, now: datetime, attempts: int, source_expires_at: datetime) -> datetime:
        """When to try again after `attempts` failures: exponential, jittered, never after the
        source link dies (that attempt then ends the image as `source_expired`)."""
        delay = min(self.backoff_max_seconds, self.backoff_initial_seconds * 2.0 ** (attempts - 1))
        delay *= random.uniform(0.8, 1.0)  # noqa: S311 - spreads retries, not for security
        return min(now + timedelta(seconds=delay), source_expires_at)


class Archiver:
    """Archives one claimed image; each step is its own short transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: ArchiveStore,
        downloader: Downloader,
        policy: ArchivePolicy,
        owner: str,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.downloader = downloader
        self.policy = policy
        self.owner = owner

    async def archive(self, image: ArchiveImage) -> None:
        """Download, check, thumbnail and store one image, then record what happened."""
        structlog.contextvars.bind_contextvars(job_id=str(image.job_id), image_index=image.index)
        if utcnow() >= image.source_expires_at:
            message = f"EvoLink's link expired at {image.source_expires_at.isoformat()}"
            if image.error_code:
                message += f"; last error: {image.error_code}: {image.error_message}"
            await self._failed(image, "source_expired", message)
            return
        with tempfile.TemporaryDirectory(prefix="evolink-archive-") as tmp:
            try:
                downloaded = await self.downloader.fetch(image.source_url, Path(tmp) / "image")
                thumbnail = await asyncio.to_thread(
                    make_thumbnail, downloaded.path, Path(tmp) / "thumbnail.webp"
                )
            except DownloadFailed as exc:
                if exc.retryable:
                    await self._retry(image, exc.code, exc.message)
                else:
                    await self._failed(image, exc.code, exc.message)
                return
            key = f"{image.job_id}/{image.index}"
            try:
                await self.store.put_file(key, downloaded.path, downloaded.content_type)
                await self.store.put_file(f"{key}.thumbnail.webp", thumbnail.path, "image/webp")
            except Exception as exc:  # obstore raises many kinds; all mean "not stored yet"
                log.warning("archive_store_failed", error=str(exc)[:500])
                await self._retry(image, "store_unavailable", str(exc)[:500])
                return
        now = utcnow()
        stored = {
            "object_key": key,
            "content_type": downloaded.content_type,
            "size_bytes": downloaded.size,
            "width": downloaded.width,
            "height": downloaded.height,
            "sha256": downloaded.sha256,
            "thumbnail_key": f"{key}.thumbnail.webp",
            "thumbnail_bytes": thumbnail.size,
            "thumbnail_sha256": thumbnail.sha256,
            "stored_at": now,
            "next_attempt_at": None,
        }
        async with self.sessions() as session:
            recorded = await archive_service.record_archived(session, image, self.owner, stored)
            await session.commit()
        if recorded:
            ARCHIVE_IMAGES.labels(outcome="archived").inc()
            ARCHIVE_BYTES.inc(downloaded.size + thumbnail.size)
            ARCHIVE_LAG.observe(max(0.0, (now - image.job_completed_at).total_seconds()))
            log.info("image_archived", bytes=downloaded.size, sha256=downloaded.sha256)

    async def _failed(self, image: ArchiveImage, code: str, message: str) -> None:
        async with self.sessions() as session:
            failed = await archive_service.record_failed(session, image, self.owner, code, message)
            await session.commit()
        if failed:
            ARCHIVE_IMAGES.labels(outcome="failed").inc()

    async def _retry(self, image: ArchiveImage, code: str, message: str) -> None:
        at = self.policy.retry_at(utcnow(), image.attempts + 1, image.source_expires_at)
        log.info("image_archive_retry", code=code, error=message[:200], retry_at=at.isoformat())
        async with self.sessions() as session:
            await archive_service.schedule_retry(session, image, self.owner, code, message, at)
            await session.commit()


class ArchiveWorker:
    """Every `interval` seconds: start newly completed jobs, claim due images and archive them
    concurrently (at most `batch_size` at once), and, hourly-ish, apply retention. While jobs
    complete faster than a batch per interval, it starts batch after batch without waiting."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        archiver: Archiver | None,
        *,
        interval: float,
        batch_size: int,
    ) -> None:
        self.sessions = sessions
        self.archiver = archiver
        self.interval = interval
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_housekeeping = -HOUSEKEEPING_INTERVAL_SECONDS
        self._more_to_start = False
        self.outage = OutageLog()  # a database outage is one line, not a trace per tick

    @property
    def owner(self) -> str:
        return self.archiver.owner if self.archiver else "archive-off"

    def start(self) -> None:
        """Run the loop in the background of the current event loop."""
        self._loop_task = asyncio.create_task(self.run(), name="evolink-jobs-archive")

    async def run(self) -> None:
        """Loop until stopped."""
        while not self._stopping:
            try:
                await self.tick()
            except Exception as exc:
                self._more_to_start = False
                if not self.outage.failed(exc):
                    log.exception("archive_tick_failed")
            else:
                self.outage.succeeded()
            if self._more_to_start:
                continue  # a full batch of jobs started: more are waiting, go on at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()

    async def tick(self) -> int:
        """Start new jobs, then claim what is due (up to the free capacity); how many claimed."""
        now = utcnow()
        async with self.sessions() as session:
            started = await archive_service.start_pending_jobs(
                session, enabled=self.archiver is not None, limit=START_BATCH, now=now
            )
            await session.commit()
        self._more_to_start = started == START_BATCH
        if self.archiver is None:
            return 0
        capacity = self.batch_size - len(self._in_flight)
        images: list[ArchiveImage] = []
        if capacity > 0:
            lease = now + timedelta(seconds=self.archiver.policy.lease_seconds)
            async with self.sessions() as session:
                images = list(
                    await repository.claim_due_images(session, self.owner, now, lease, capacity)
                )
                await session.commit()
        for image in images:
            task = asyncio.create_task(self._archive(image))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        await self._housekeeping()
        return len(images)

    async def drain(self) -> None:
        """Wait for every image being archived."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming, let archiving finish for `grace_seconds`, then release every claim."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await finish_in_flight(self._in_flight, grace_seconds)
        await release_at_shutdown(
            self.sessions, repository.release_all, self.owner, "archive_release_failed"
        )
        if self.archiver is not None:
            await self.archiver.downloader.http.aclose()

    async def _archive(self, image: ArchiveImage) -> None:
        assert self.archiver is not None
        try:
            await self.archiver.archive(image)
        except Exception as exc:
            if not self.outage.failed(exc):
                log.exception("image_archive_crashed", job_id=str(image.job_id), index=image.index)

    async def _housekeeping(self) -> None:
        assert self.archiver is not None
        loop_time = asyncio.get_running_loop().time()
        days = self.archiver.policy.retention_days
        if days is None or loop_time - self._last_housekeeping < HOUSEKEEPING_INTERVAL_SECONDS:
            return
        self._last_housekeeping = loop_time
        await retention.purge_expired(self.sessions, self.archiver.store, days)


def build_archive_worker(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], store: ArchiveStore | None
) -> ArchiveWorker:
    """The archive worker configured from the settings (it only marks jobs `off` when
    archiving is off)."""
    archiver = None
    if store is not None:
        http = build_source_client(
            allow_private=settings.archive_allow_private_networks,
            timeout=settings.archive_download_timeout_seconds,
        )
        downloader = Downloader(
            http,
            max_bytes=settings.archive_max_bytes,
            timeout=settings.archive_download_timeout_seconds,
        )
        policy = ArchivePolicy(
            lease_seconds=settings.claim_lease_seconds,
            backoff_initial_seconds=settings.archive_backoff_initial_seconds,
            backoff_max_seconds=settings.archive_backoff_max_seconds,
            retention_days=settings.archive_retention_days,
        )
        archiver = Archiver(sessions, store, downloader, policy, process_identity())
    return ArchiveWorker(
        sessions,
        archiver,
        interval=settings.worker_interval_seconds,
        batch_size=settings.worker_batch_size,
    )
