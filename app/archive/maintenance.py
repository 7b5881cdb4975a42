"""Operator tasks on the archive, for `evolink-jobs archive --backfill | --purge-expired`."""

from __future__ import annotations

from app.archive import retention
from app.archive import service as archive_service
from app.archive.store import ArchiveStore
from app.config import Settings
from app.db import create_engine, create_session_factory, utcnow


async def backfill(settings: Settings) -> int:
    """Queue completed jobs without an archive whose links still work; the worker archives
    them. How many were queued."""
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            queued = await archive_service.backfill(session, utcnow())
            await session.commit()
        return queued
    finally:
        await engine.dispose()


async def purge_expired(settings: Settings) -> int:
    """Delete images older than ARCHIVE_RETENTION_DAYS now; how many were expired."""
    store = ArchiveStore.from_settings(settings)
    assert store is not None and settings.archive_retention_days is not None
    engine = create_engine(settings.database_url)
    try:
        return await retention.purge_expired(
            create_session_factory(engine), store, settings.archive_retention_days
        )
    finally:
        await engine.dispose()
