"""The rules for jobs: creating them and looking them up (submission.py sends them).

Services flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import JobNotFound
from app.evolink.models import MODELS
from app.jobs import repository
from app.jobs.models import Job, JobStatus
from app.jobs.pagination import decode_cursor, encode_cursor
from app.jobs.schemas import JobCreate


async def create_job(
    session: AsyncSession, caller: str, body: JobCreate, submission: dict[str, Any]
) -> Job:
    """A new `queued` job for `caller`, with `submission`'s columns; commit before sending it."""
    return await repository.add_job(session, Job(**new_job_values(caller, body, submission)))


def new_job_values(caller: str, body: JobCreate, submission: dict[str, Any]) -> dict[str, Any]:
    """Every column of a new `queued` job for `caller`, by attribute, with `submission`'s."""
    spec = MODELS[body.model]
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "caller": caller,
        "status": JobStatus.QUEUED,
        "progress": 0,
        "model": body.model,
        "prompt": body.prompt,
        "size": body.size,
        "n": body.n if body.n is not None else spec.default_n,
        "image_urls": list(body.image_urls),
        "mask_url": body.mask_url,
        "metadata_": body.metadata,
        "notify_url": body.notify_url,
        "results": [],
        "created_at": now,
        "updated_at": now,
        **submission,
    }


async def get_job(session: AsyncSession, caller: str, job_id: uuid.UUID) -> Job:
    """The caller's job; JobNotFound for unknown ids and other callers' jobs alike."""
    job = await repository.get_caller_job(session, caller, job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job


async def list_jobs(
    session: AsyncSession, caller: str, *, status: str | None, limit: int, cursor: str | None
) -> tuple[Sequence[Job], str | None]:
    """One page of the caller's jobs, newest first, and the cursor for the next (or None)."""
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.list_caller_jobs(
        session, caller, status=status, limit=limit + 1, after=after
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, next_cursor
