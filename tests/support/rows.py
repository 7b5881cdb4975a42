"""Reading and moving job rows directly, to put jobs in a state or in time without sleeping."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.jobs.models import Job
from app.worker.runner import Worker

Sessions = async_sessionmaker[AsyncSession]


async def stored(sessions: Sessions, job_id: str | uuid.UUID) -> Job:
    """The job as the database holds it now."""
    async with sessions() as session:
        job = await session.get(Job, uuid.UUID(str(job_id)))
        assert job is not None
        return job


async def set_job(sessions: Sessions, job_id: str | uuid.UUID, **values: Any) -> None:
    """Overwrite columns of a job (to age it, or to fake another process's claim)."""
    async with sessions() as session:
        await session.execute(update(Job).where(Job.id == uuid.UUID(str(job_id))).values(**values))
        await session.commit()


async def make_due(sessions: Sessions, job_id: str | uuid.UUID) -> None:
    """Bring a job's next attempt to just now, as if its wait had passed."""
    await set_job(sessions, job_id, next_attempt_at=ago(0.001))


def ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def seconds_until(moment: datetime | None) -> float:
    assert moment is not None
    return (moment - utcnow()).total_seconds()


async def run(worker: Worker) -> int:
    """One worker tick, waited to the end; how many jobs it claimed."""
    claimed = await worker.tick()
    await worker.drain()
    return claimed


async def history(client: httpx.AsyncClient, job_id: str) -> list[tuple[str, str]]:
    """The job's events as (source, outcome) pairs, oldest first."""
    response = await client.get(f"/v1/jobs/{job_id}/events")
    assert response.status_code == 200
    return [(e["source"], e["outcome"]) for e in response.json()["data"]]
