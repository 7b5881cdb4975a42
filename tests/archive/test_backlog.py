"""A backlog of completed jobs is started batch after batch, not one batch per interval."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from app.archive.models import ArchiveStatus
from app.archive.worker import START_BATCH, ArchiveWorker
from app.jobs.models import Job
from tests.archive.conftest import Sessions, completed_job

# Far longer than the test may take: a worker that waits for its next tick never finishes.
INTERVAL = 3600


async def still_pending(sessions: Sessions) -> int:
    async with sessions() as session:
        query = select(func.count()).where(Job.archive_status == ArchiveStatus.PENDING)
        return int(await session.scalar(query) or 0)


async def test_more_completed_jobs_than_a_batch_all_start_without_waiting_an_interval(
    session_factory: Sessions,
) -> None:
    for n in range(2 * START_BATCH + 1):
        await completed_job(session_factory, [f"https://files.example/{n}.png"])
    worker = ArchiveWorker(session_factory, None, interval=INTERVAL, batch_size=8)  # archive off
    worker.start()
    try:
        for _ in range(600):  # 30 s at most
            if not await still_pending(session_factory):
                break
            await asyncio.sleep(0.05)
        assert await still_pending(session_factory) == 0
    finally:
        await worker.stop(grace_seconds=1)
    async with session_factory() as session:
        off = select(func.count()).where(Job.archive_status == ArchiveStatus.OFF)
        assert await session.scalar(off) == 2 * START_BATCH + 1
