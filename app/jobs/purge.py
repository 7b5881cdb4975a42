"""Retention of jobs: `evolink-jobs purge --finished-before DURATION` deletes finished jobs.

Nothing is deleted unless an operator asks. Jobs go in batches of `batch_size`, each in a short
transaction of its own (no long locks; the API and workers go on meanwhile), oldest first, with
their events, idempotency keys and archive rows. Their archived images and thumbnails are
deleted from the archive first: once a job's rows are gone, the archive's own retention could no
longer find them. A crash between the two leaves rows whose objects are gone; the next purge
deletes them (deleting a missing object is not an error). Jobs still being archived, or held
by a worker, wait for a later purge.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.archive import repository as archive_repository
from app.archive.store import ArchiveStore
from app.config import Settings
from app.db import create_engine, create_session_factory, utcnow
from app.jobs import repository

log = structlog.get_logger(__name__)

DEFAULT_BATCH_SIZE = 500
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


class DurationInvalid(ValueError):
    """Not a duration such as 30d, 12h, 90m, 45s or 2w."""


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s` or `2w` as a timedelta (more than zero)."""
    match = _DURATION.match(text)
    if match is None:
        raise DurationInvalid(f"{text!r} is not a duration such as 30d, 12h, 90m, 45s or 2w")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise DurationInvalid(f"{text!r} must be more than zero")
    return timedelta(seconds=seconds)


async def purge_finished(
    sessions: async_sessionmaker[AsyncSession],
    store: ArchiveStore | None,
    cutoff: datetime,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete jobs that finished before `cutoff`, `batch_size` at a time; how many went."""
    total = 0
    while True:
        async with sessions() as session:
            job_ids = await repository.finished_job_ids_before(session, cutoff, batch_size)
            keys = await archive_repository.stored_keys(session, job_ids) if job_ids else []
            await session.commit()
        if not job_ids:
            break
        if store is not None and keys:
            await store.delete(keys)
        async with sessions() as session:
            deleted = await repository.delete_finished_jobs(session, job_ids)
            await session.commit()
        total += deleted
        if progress is not None:
            progress(total)
        if deleted == 0:
            break  # every job of the batch changed meanwhile; a later purge takes them
    if total:
        log.info("jobs_purged", count=total, finished_before=cutoff.isoformat())
    return total


async def purge(
    settings: Settings,
    finished_before: timedelta,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """`purge_finished` on the settings' database and archive, for jobs finished longer ago
    than `finished_before`."""
    engine = create_engine(settings.database_url)
    try:
        return await purge_finished(
            create_session_factory(engine),
            ArchiveStore.from_settings(settings),
            utcnow() - finished_before,
            batch_size=batch_size,
            progress=progress,
        )
    finally:
        await engine.dispose()
