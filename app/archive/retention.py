"""Retention: archived images older than ARCHIVE_RETENTION_DAYS are deleted and marked
`expired` (worker housekeeping, and `evolink-jobs archive --purge-expired`)."""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.archive import repository
from app.archive.store import ArchiveStore
from app.db import utcnow

log = structlog.get_logger(__name__)

PURGE_BATCH = 200


async def purge_expired(
    sessions: async_sessionmaker[AsyncSession], store: ArchiveStore, retention_days: float
) -> int:
    """Delete every image stored more than `retention_days` ago; how many were expired.

    The objects go first, then the row is marked: after a crash in between, the next purge
    deletes them again (deleting a missing object is not an error) and marks the row.
    """
    cutoff = utcnow() - timedelta(days=retention_days)
    total = 0
    while True:
        async with sessions() as session:
            images = await repository.stored_before(session, cutoff, PURGE_BATCH)
            await session.commit()
        if not images:
            break
        for image in images:
            keys = [k for k in (image.object_key, image.thumbnail_key) if k]
            await store.delete(keys)
            async with sessions() as session:
                if await repository.mark_expired(session, image, utcnow()):
                    total += 1
                await session.commit()
    if total:
        log.info("archive_purged", count=total, retention_days=retention_days)
    return total
