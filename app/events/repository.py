"""The SQL of change signals and waiters, and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job

# Ids per re-check query: far below every backend's limit on bound parameters.
_CHUNK = 500


class JobStateRow(NamedTuple):
    """The columns a job's sequence is made of (app/events/sequence.py)."""

    id: uuid.UUID
    status: str
    progress: int
    error_code: str | None
    archive_status: str | None


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """PostgreSQL: queue a notification, delivered to listeners when the transaction commits."""
    await session.execute(select(func.pg_notify(channel, payload)))


async def job_states(session: AsyncSession, job_ids: Iterable[uuid.UUID]) -> list[JobStateRow]:
    """The sequence columns of each of these jobs that exists."""
    ids = list(job_ids)
    rows: list[JobStateRow] = []
    for start in range(0, len(ids), _CHUNK):
        result = await session.execute(
            select(Job.id, Job.status, Job.progress, Job.error_code, Job.archive_status).where(
                Job.id.in_(ids[start : start + _CHUNK])
            )
        )
        rows.extend(JobStateRow(*row) for row in result)
    return rows
