"""The one way a job's state changes: observations of its EvoLink task, applied monotonically.

Callbacks, polls and the create answer all go through `apply_observation`. The rules:
final states never change; progress never goes down; an older status arriving after a newer one
is `stale`; a repeat is `duplicate`; an unknown status is `rejected` and never applied. The change
is one conditional UPDATE, so concurrent duplicate deliveries make exactly one transition.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import JobNotFound
from app.evolink.schemas import Task
from app.jobs import repository
from app.jobs.models import EventOutcome, EventSource, JobEvent, JobStatus

log = structlog.get_logger(__name__)

RANK = {
    JobStatus.QUEUED: 0,
    JobStatus.PENDING: 1,
    JobStatus.PROCESSING: 2,
    JobStatus.COMPLETED: 3,
    JobStatus.FAILED: 3,
    JobStatus.CANCELLED: 3,
}
EVOLINK_STATUSES = {
    "pending": JobStatus.PENDING,
    "processing": JobStatus.PROCESSING,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "canceled": JobStatus.CANCELLED,
}
DEFAULT_ERROR_CODES = {JobStatus.FAILED: "unknown_error", JobStatus.CANCELLED: "request_cancelled"}


@dataclass(frozen=True)
class Observation:
    """What one report of the task says, and how it reached us."""

    task: Task
    source: EventSource
    body: str | None = None


@dataclass(frozen=True)
class ApplyResult:
    """What an observation did to the job, and why when it did nothing."""

    outcome: EventOutcome
    detail: str | None = None

    @property
    def task_mismatch(self) -> bool:
        return self.outcome is EventOutcome.REJECTED and self.detail == MISMATCH


MISMATCH = "the task id is not this job's EvoLink task"


def target_status(task: Task) -> JobStatus | None:
    """Our status for EvoLink's, or None when EvoLink says something we do not know."""
    return EVOLINK_STATUSES.get((task.status or "").lower())


async def apply_observation(
    session: AsyncSession, job_id: uuid.UUID, observation: Observation
) -> ApplyResult:
    """Apply one observation of the job's task and record it as an event; the caller commits."""
    task = observation.task
    status = target_status(task)
    if status is None:
        if not await repository.job_exists(session, job_id):
            raise JobNotFound(f"no job {job_id}")
        detail = f"unknown status {task.status!r}; recorded, not applied"
        log.warning("unknown_task_status", job_id=str(job_id), task_status=task.status)
        return await _record(session, job_id, observation, EventOutcome.REJECTED, detail)

    progress = _progress(task, status)
    lower = [s for s, rank in RANK.items() if rank < RANK[status]]
    applied = await repository.transition_job(
        session,
        job_id,
        task.id,
        from_statuses=lower,
        same_status_below_progress=None if status.is_final else (status, progress),
        values=_values(task, status),
        progress=progress,
    )
    if applied:
        return await _record(session, job_id, observation, EventOutcome.APPLIED)

    job = await repository.get_job(session, job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    if job.evolink_task_id not in (None, task.id):
        return await _record(session, job_id, observation, EventOutcome.REJECTED, MISMATCH)
    outcome = EventOutcome.DUPLICATE if job.status == status else EventOutcome.STALE
    return await _record(session, job_id, observation, outcome)


async def record_rejection(
    session: AsyncSession, job_id: uuid.UUID, source: EventSource, body: str | None, detail: str
) -> None:
    """Record a delivery that could not be read as a task at all."""
    await repository.add_event(
        session,
        JobEvent(
            job_id=job_id,
            source=source,
            status=None,
            outcome=EventOutcome.REJECTED,
            detail=detail,
            body=body,
        ),
    )


def _progress(task: Task, status: JobStatus) -> int:
    if status is JobStatus.COMPLETED:
        return 100
    return max(0, min(100, round(task.progress or 0)))


def _values(task: Task, status: JobStatus) -> dict[str, Any]:
    now = utcnow()
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status.is_final:
        values["completed_at"] = now
    if status is JobStatus.COMPLETED:
        values["results"] = list(task.results or [])
    elif status in DEFAULT_ERROR_CODES:
        error = task.error
        values["error_code"] = (error.code if error else None) or DEFAULT_ERROR_CODES[status]
        values["error_message"] = error.message if error else None
    if task.usage is not None:
        values["usage"] = task.usage
    if task.estimated_time is not None:
        values["estimated_time"] = task.estimated_time
    return values


async def _record(
    session: AsyncSession,
    job_id: uuid.UUID,
    observation: Observation,
    outcome: EventOutcome,
    detail: str | None = None,
) -> ApplyResult:
    await repository.add_event(
        session,
        JobEvent(
            job_id=job_id,
            source=observation.source,
            status=observation.task.status,
            outcome=outcome,
            detail=detail,
            body=observation.body,
        ),
    )
    log.info(
        "task_observed",
        job_id=str(job_id),
        evolink_task_id=observation.task.id,
        source=observation.source,
        task_status=observation.task.status,
        outcome=outcome,
    )
    return ApplyResult(outcome, detail)
