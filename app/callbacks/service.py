"""Taking one of EvoLink's callbacks: defer it for confirmation or apply it, and record it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.evolink.schemas import Task
from app.jobs import repository as jobs_repository
from app.jobs.models import EventOutcome, EventSource
from app.jobs.state_machine import (
    ApplyResult,
    Observation,
    apply_observation,
    defer_observation,
    target_status,
)
from app.metrics import CALLBACKS


async def take_callback(
    session: AsyncSession, settings: Settings, job_id: uuid.UUID, task: Task, body: str
) -> ApplyResult:
    """Record the callback `task` (its raw `body`) on the job, and commit.

    With VERIFY_CALLBACKS (the default) a callback is only a hint: it is recorded as `deferred`
    and background work confirms it with EvoLink's task API before anything is applied (EvoLink
    calls back final states only, so a callback that would change nothing is still `duplicate`
    or `stale` at once).
    """
    observation = Observation(task, EventSource.CALLBACK, body)
    if settings.verify_callbacks and target_status(task) is not None:
        debounce = timedelta(seconds=settings.poll_backoff_initial_seconds)
        result = await defer_observation(session, job_id, observation, debounce=debounce)
    else:
        result = await apply_observation(session, job_id, observation)
    if result.outcome not in (EventOutcome.APPLIED, EventOutcome.DEFERRED):
        # An applied or deferred callback stamped its arrival in its own UPDATE.
        await jobs_repository.fill_missing_details(
            session, job_id, {"callback_received_at": utcnow()}
        )
    await session.commit()
    CALLBACKS.labels(outcome=result.outcome).inc()
    return result
