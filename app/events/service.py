"""The rules of waiting: read a job without holding a connection, wait for it to end, follow it.

Every read opens its own short session, so a waiter holds no database connection while it
sleeps. A waiter registers its watch before it reads, and clears it just before each read, so
a change committed at any moment either is in what it read or wakes it again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.archive import service as archive_service
from app.archive.models import ArchiveImage
from app.errors import DATABASE_ERRORS, AppError, JobNotFound, is_database_unavailable
from app.events.hub import ChangeHub, Watch
from app.events.sequence import is_final, is_settled, sequence
from app.jobs import service as jobs_service
from app.jobs.models import Job

log = structlog.get_logger(__name__)

# How soon a stream tries again to read its job while the database is away.
STREAM_RETRY_SECONDS = 1.0


class InvalidLastEventId(AppError):
    status, code, title = 400, "invalid_last_event_id", "Invalid Last-Event-ID"


@dataclass(frozen=True)
class JobSnapshot:
    """A job as read at one moment, with its archived images and its sequence."""

    job: Job
    images: list[ArchiveImage]

    @property
    def sequence(self) -> int:
        return sequence(self.job)


async def read_job(
    sessions: async_sessionmaker[AsyncSession], caller: str, job_id: uuid.UUID
) -> JobSnapshot:
    """The caller's job now (JobNotFound otherwise), in a session closed before returning."""
    async with sessions() as session:
        job = await jobs_service.get_job(session, caller, job_id)
        images = await archive_service.archived_images_by_job(session, [job.id])
        return JobSnapshot(job, images[job.id])


async def wait_until_final(
    hub: ChangeHub,
    sessions: async_sessionmaker[AsyncSession],
    caller: str,
    job_id: uuid.UUID,
    seconds: float,
) -> JobSnapshot:
    """The caller's job once it is final, or as it stands after `seconds`.

    TooManyWaiters (503) past the waiters' cap, JobNotFound (404) for another caller's job.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with hub.watch(job_id) as watch:
        while True:
            snapshot = await _read(watch, sessions, caller)
            remaining = deadline - loop.time()
            if is_final(snapshot.job) or remaining <= 0 or hub.closing:
                return snapshot
            await watch.changed(remaining)


def parse_last_event_id(value: str | None) -> int | None:
    """`Last-Event-ID` as a sequence (None when absent); InvalidLastEventId (400) otherwise."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise InvalidLastEventId(
            "Last-Event-ID must be the id of an event of this stream (a non-negative integer)."
        )
    return int(text)


async def open_stream(
    hub: ChangeHub,
    sessions: async_sessionmaker[AsyncSession],
    caller: str,
    job_id: uuid.UUID,
) -> tuple[Watch, JobSnapshot]:
    """A watch on the caller's job and the job now: TooManyWaiters (503) or JobNotFound (404)
    before any event is sent. The caller closes the watch."""
    watch = hub.watch(job_id)
    try:
        return watch, await _read(watch, sessions, caller)
    except BaseException:
        watch.close()
        raise


async def follow(
    watch: Watch,
    sessions: async_sessionmaker[AsyncSession],
    caller: str,
    first: JobSnapshot,
    after: int | None,
) -> AsyncGenerator[JobSnapshot]:
    """Each state of the job newer than `after`, from `first` on, until it is settled.

    A state that lasted less than one read may be folded into the next: every state yielded is
    newer than the one before. A database outage pauses the stream; it resumes when the
    database answers again. It ends early when the process shuts down. The watch is closed at
    the end.
    """
    snapshot: JobSnapshot | None = first
    away = False
    with watch:
        while True:
            if snapshot is not None:
                if after is None or snapshot.sequence > after:
                    after = snapshot.sequence
                    yield snapshot
                if is_settled(snapshot.job):
                    return
                await watch.changed()
            if watch.hub.closing:
                return  # shutting down: the client resumes elsewhere with Last-Event-ID
            try:
                snapshot = await _read(watch, sessions, caller)
            except JobNotFound:
                return  # deleted meanwhile: nothing more will happen to it
            except DATABASE_ERRORS as exc:
                if not is_database_unavailable(exc):
                    raise
                if not away:
                    log.info("stream_paused", job_id=str(watch.job_id), reason="database")
                away, snapshot = True, None
                await watch.changed(STREAM_RETRY_SECONDS)
                continue
            if away:
                log.info("stream_resumed", job_id=str(watch.job_id))
                away = False


async def _read(
    watch: Watch, sessions: async_sessionmaker[AsyncSession], caller: str
) -> JobSnapshot:
    watch.reading()
    snapshot = await read_job(sessions, caller, watch.job_id)
    watch.seen = snapshot.sequence
    return snapshot
