"""The one way a job's state changes: observations of its EvoLink task, applied monotonically.

Callbacks, polls and the create answer all go through `apply_observation`; our own verdicts
(deadlines) through `fail_locally`. The rules: final states never change, except that EvoLink's
real answer wins over our own timeout verdict; progress never goes down; an older status arriving
after a newer one is `stale`; a repeat is `duplicate`; an unknown status is `rejected` and never
applied. Each change is one conditional UPDATE, so concurrent duplicate deliveries make exactly
one transition.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.archive.models import ArchiveStatus
from app.db import utcnow
from app.errors import JobNotFound
from app.evolink.schemas import Task
from app.jobs import events, repository
from app.jobs.lifecycle import job_changed
from app.jobs.models import EventOutcome, EventSource, JobEvent, JobStatus, SubmitState

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
# Our own verdicts, which a real final answer from EvoLink may still overturn.
LOCAL_VERDICTS = ("deadline_exceeded", "submission_unknown", "task_not_found")
NON_FINAL = (JobStatus.QUEUED, JobStatus.PENDING, JobStatus.PROCESSING)
MISMATCH = "the task id is not this job's EvoLink task"
DENIED = "EvoLink said it has no such task; not asked again"


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
        return self.outcome is EventOutcome.REJECTED and self.detail in (MISMATCH, DENIED)


@dataclass(frozen=True)
class Change:
    """What applying an observation writes, and from which states it may: the arguments of
    `repository.transition_job` (also run, for final callbacks, by app/hot/applying.py)."""

    status: JobStatus
    progress: int
    values: dict[str, Any]
    from_statuses: list[str]
    same_status_below_progress: tuple[str, int] | None
    overturn_local_verdicts: tuple[str, ...]


def change_for(
    task: Task, status: JobStatus, source: EventSource, next_check_at: datetime | None = None
) -> Change:
    """The change that an observation of `task` (our `status` for it) makes, if allowed."""
    progress = _progress(task, status)
    values = _values(task, status, source)
    if not status.is_final and next_check_at is not None:
        values["next_attempt_at"] = next_check_at
    return Change(
        status=status,
        progress=progress,
        values=values,
        from_statuses=[s for s, rank in RANK.items() if rank < RANK[status]],
        same_status_below_progress=None if status.is_final else (status, progress),
        overturn_local_verdicts=LOCAL_VERDICTS if status.is_final else (),
    )


def target_status(task: Task) -> JobStatus | None:
    """Our status for EvoLink's, or None when EvoLink says something we do not know."""
    return EVOLINK_STATUSES.get((task.status or "").lower())


async def apply_observation(
    session: AsyncSession,
    job_id: uuid.UUID,
    observation: Observation,
    *,
    next_check_at: datetime | None = None,
) -> ApplyResult:
    """Apply one observation of the job's task and record it as an event; the caller commits.

    `next_check_at` is when background work should look at the job again if this leaves it
    unfinished.
    """
    task = observation.task
    status = target_status(task)
    if status is None:
        detail = f"unknown status {task.status!r}; recorded, not applied"
        log.warning("unknown_task_status", job_id=str(job_id), task_status=task.status)
        return await _classify_unapplied(session, job_id, observation, detail)

    change = change_for(task, status, observation.source, next_check_at)
    applied = await repository.transition_job(
        session,
        job_id,
        task.id,
        from_statuses=change.from_statuses,
        same_status_below_progress=change.same_status_below_progress,
        overturn_local_verdicts=change.overturn_local_verdicts,
        values=change.values,
        progress=change.progress,
        callback_at=_callback_at(observation),
    )
    if applied:
        await job_changed(session, job_id, status, observation.source)
        return await _record(session, job_id, observation, EventOutcome.APPLIED)
    return await _classify_unapplied(session, job_id, observation)


async def defer_observation(
    session: AsyncSession,
    job_id: uuid.UUID,
    observation: Observation,
    *,
    debounce: timedelta = timedelta(0),
) -> ApplyResult:
    """Hold a final callback until EvoLink's task API confirms it: bind the task, poll it now.

    Debounced per task: a callback naming the task a callback named less than `debounce` ago
    asks for no poll of its own (the one asked for stands), and a task that EvoLink has already
    denied (the job was unbound from it) is refused. A burst of callbacks naming one task
    (EvoLink's retries, or forgeries by whoever learnt the URL) makes one poll, not one each.
    """
    now = utcnow()
    task_id = observation.task.id
    asked_at, asked_task_id, bound_task_id = await repository.last_confirmation(session, job_id)
    values: dict[str, Any] = {
        "confirm_requested_at": now,
        "confirm_task_id": task_id,
        "next_attempt_at": now,
    }
    if asked_at is not None and asked_task_id == task_id:
        if bound_task_id is None:  # asked about, and unbound since: EvoLink denied it
            return await _record(session, job_id, observation, EventOutcome.REJECTED, DENIED)
        if now < asked_at + debounce:
            values = {}
    deferred = await repository.transition_job(
        session,
        job_id,
        observation.task.id,
        from_statuses=NON_FINAL,
        same_status_below_progress=None,
        overturn_local_verdicts=LOCAL_VERDICTS,
        # The submission state stays as it was: until EvoLink confirms the task, the callback
        # may be forged, and a job it named a task EvoLink does not know must go on as before.
        values=values,
        progress=None,
        callback_at=_callback_at(observation),
    )
    if deferred:
        return await _record(
            session, job_id, observation, EventOutcome.DEFERRED, "confirming with EvoLink"
        )
    return await _classify_unapplied(session, job_id, observation)


async def unbind_unconfirmed_task(
    session: AsyncSession, job_id: uuid.UUID, task_id: str, detail: str
) -> bool:
    """Forget a task that only a (deferred) callback named and EvoLink does not know.

    EvoLink never accepted such a job in our sight (its submission is not done): it is still
    `queued`, and goes back to where its submission stood, due now; or we failed it ourselves
    (deadline, unknown submission), and it stays so, free for EvoLink's real late result.
    True if the job was unbound.
    """
    unbound = await repository.unbind_unconfirmed(
        session, job_id, task_id, LOCAL_VERDICTS, utcnow()
    )
    if unbound:
        await record_rejection(session, job_id, EventSource.POLL, None, detail)
        log.warning("unconfirmed_task_unbound", job_id=str(job_id), evolink_task_id=task_id)
    return unbound


async def fail_locally(
    session: AsyncSession,
    job_id: uuid.UUID,
    code: str,
    message: str,
    *,
    from_statuses: tuple[str, ...] = NON_FINAL,
) -> bool:
    """Our own verdict: fail an unfinished job with `code`; True if it was still unfinished."""
    now = utcnow()
    failed = await repository.update_job_if(
        session,
        job_id,
        from_statuses,
        {
            "status": JobStatus.FAILED,
            "error_code": code,
            "error_message": message,
            "updated_at": now,
            "completed_at": now,
            "final_source": EventSource.LOCAL,
            "next_attempt_at": None,
        },
    )
    if failed:
        await events.record(
            session,
            JobEvent(
                job_id=job_id,
                source=EventSource.LOCAL,
                status=JobStatus.FAILED,
                outcome=EventOutcome.APPLIED,
                detail=f"{code}: {message}",
                body=None,
            ),
        )
        log.warning("job_failed_locally", job_id=str(job_id), code=code)
        await job_changed(session, job_id, JobStatus.FAILED, EventSource.LOCAL)
    return failed


async def record_rejection(
    session: AsyncSession, job_id: uuid.UUID, source: EventSource, body: str | None, detail: str
) -> None:
    """Record a delivery that could not be read as a task at all."""
    await events.record(
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


async def _classify_unapplied(
    session: AsyncSession, job_id: uuid.UUID, observation: Observation, detail: str | None = None
) -> ApplyResult:
    job = await repository.get_job(session, job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    if detail is not None:
        return await _record(session, job_id, observation, EventOutcome.REJECTED, detail)
    if job.evolink_task_id not in (None, observation.task.id) or (
        job.evolink_task_id is None
        and await repository.task_bound_elsewhere(session, observation.task.id, job_id)
    ):
        return await _record(session, job_id, observation, EventOutcome.REJECTED, MISMATCH)
    same = job.status == target_status(observation.task)
    outcome = EventOutcome.DUPLICATE if same else EventOutcome.STALE
    return await _record(session, job_id, observation, outcome)


def _callback_at(observation: Observation) -> datetime | None:
    # A callback that changes the job stamps its arrival in the same UPDATE (one statement
    # fewer on the hot path); one that changes nothing is stamped by the callback route.
    return utcnow() if observation.source is EventSource.CALLBACK else None


def _progress(task: Task, status: JobStatus) -> int:
    if status is JobStatus.COMPLETED:
        return 100
    return max(0, min(100, round(task.progress or 0)))


def _values(task: Task, status: JobStatus, source: EventSource) -> dict[str, Any]:
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "updated_at": now,
        "submit_state": SubmitState.DONE,
    }
    if status.is_final:
        values.update(completed_at=now, final_source=source, next_attempt_at=None)
    if status is JobStatus.COMPLETED:
        values.update(results=list(task.results or []), error_code=None, error_message=None)
        values["archive_status"] = ArchiveStatus.PENDING  # the archive worker takes it from here
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
    await events.record(
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
