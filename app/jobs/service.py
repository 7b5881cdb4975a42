"""The rules for jobs: creating them, submitting them to EvoLink, looking them up.

Services flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import AppError, JobNotFound
from app.evolink import errors as evolink_errors
from app.evolink.client import EvolinkClient
from app.evolink.models import MODELS
from app.evolink.schemas import CreateTaskRequest
from app.jobs import errors, repository
from app.jobs.models import EventOutcome, EventSource, Job, JobEvent, JobStatus
from app.jobs.pagination import decode_cursor, encode_cursor
from app.jobs.schemas import JobCreate
from app.jobs.state_machine import Observation, apply_observation

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SubmitResult:
    """The job after submission, and the problem to answer with when EvoLink said no."""

    job: Job
    problem: AppError | None = None


async def create_job(session: AsyncSession, caller: str, body: JobCreate) -> Job:
    """A new `queued` job for `caller`; commit it before submitting."""
    spec = MODELS[body.model]
    now = utcnow()
    job = Job(
        id=uuid.uuid4(),
        caller=caller,
        status=JobStatus.QUEUED,
        progress=0,
        model=body.model,
        prompt=body.prompt,
        size=body.size,
        n=body.n if body.n is not None else spec.default_n,
        image_urls=list(body.image_urls),
        mask_url=body.mask_url,
        metadata_=body.metadata,
        results=[],
        created_at=now,
        updated_at=now,
    )
    return await repository.add_job(session, job)


def task_request(job: Job, callback_url: str) -> CreateTaskRequest:
    """What EvoLink is sent for a job."""
    return CreateTaskRequest(
        model=job.model,
        prompt=job.prompt,
        size=job.size,
        n=job.n,
        image_urls=job.image_urls or None,
        mask_url=job.mask_url,
        callback_url=callback_url,
    )


async def submit_job(
    session: AsyncSession, evolink: EvolinkClient, job: Job, callback_url: str
) -> SubmitResult:
    """Send a committed job to EvoLink and record its answer; no transaction is open meanwhile."""
    try:
        task = await evolink.create_task(task_request(job, callback_url))
    except evolink_errors.EvolinkError as exc:
        problem, code = _problem_for(exc)
        log.warning("submission_failed", job_id=str(job.id), status=exc.status, code=code)
        await repository.update_queued_job(
            session,
            job.id,
            {
                "status": JobStatus.FAILED,
                "error_code": code,
                "error_message": exc.message,
                "updated_at": utcnow(),
                "completed_at": utcnow(),
            },
        )
        problem.extensions["job_id"] = str(job.id)
        return SubmitResult(await _reload(session, job.id), problem)

    result = await apply_observation(
        session, job.id, Observation(task, EventSource.SUBMIT, task.model_dump_json())
    )
    if result.task_mismatch:
        log.error("submission_task_mismatch", job_id=str(job.id), evolink_task_id=task.id)
    elif result.outcome is not EventOutcome.APPLIED:
        # A callback overtook the create answer; keep what only the answer carries.
        details = {"usage": task.usage, "estimated_time": task.estimated_time}
        await repository.fill_missing_details(
            session, job.id, {k: v for k, v in details.items() if v is not None}
        )
    return SubmitResult(await _reload(session, job.id))


def _problem_for(exc: evolink_errors.EvolinkError) -> tuple[AppError, str]:
    """The caller's problem and the job's error code for an EvoLink failure."""
    match exc:
        case evolink_errors.EvolinkRequestRejected():
            code = exc.code or f"evolink_http_{exc.status}"
            return errors.EvolinkRejected(
                exc.message, evolink_code=code, evolink_status=exc.status
            ), code
        case evolink_errors.EvolinkAuthFailed():
            detail = "EvoLink refused this service's API key or model access; tell the operators."
            return errors.GatewayMisconfigured(detail), "evolink_auth_failed"
        case evolink_errors.EvolinkOutOfCredits():
            detail = "EvoLink reports insufficient credits; tell the operators."
            return errors.GatewayOutOfCredits(detail), "evolink_out_of_credits"
        case evolink_errors.EvolinkRateLimited():
            problem = errors.EvolinkBusy("EvoLink is rate limiting; retry later.")
            if exc.retry_after is not None:
                problem.headers["Retry-After"] = str(round(exc.retry_after))
            return problem, "evolink_rate_limited"
        case evolink_errors.EvolinkUnavailable():
            return errors.EvolinkUnreachable(exc.message), "evolink_unavailable"
        case evolink_errors.EvolinkTimeout():
            return errors.EvolinkTimedOut(exc.message), "evolink_timeout"
        case _:
            return errors.EvolinkFailed(exc.message), "evolink_server_error"


async def _reload(session: AsyncSession, job_id: uuid.UUID) -> Job:
    job = await repository.get_job(session, job_id)
    if job is None:
        raise JobNotFound(f"job {job_id} vanished")
    return job


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


async def list_events(session: AsyncSession, caller: str, job_id: uuid.UUID) -> Sequence[JobEvent]:
    """The caller's job's history, oldest first."""
    await get_job(session, caller, job_id)
    return await repository.list_events(session, job_id)
