"""The jobs API: HTTP only. Parse, call the service, commit, return."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from app.auth.dependencies import CallerDep
from app.db import SessionDep
from app.dependencies import EvolinkDep, SignerDep
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.jobs.schemas import JobCreate, JobEventList, JobEventRead, JobPage, JobRead
from app.openapi import problem_responses

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problem_responses(401, 422, 502, 503, 504),
    summary="Submit a generation job",
)
async def create_job(
    body: JobCreate,
    caller: CallerDep,
    session: SessionDep,
    signer: SignerDep,
    evolink: EvolinkDep,
    response: Response,
) -> JobRead:
    """Store the job, submit it to EvoLink, and answer 202 with the job."""
    job = await jobs_service.create_job(session, caller, body)
    await session.commit()
    result = await jobs_service.submit_job(session, evolink, job, signer.url_for(job.id))
    await session.commit()
    location = f"/v1/jobs/{job.id}"
    if result.problem is not None:
        result.problem.headers.setdefault("Location", location)
        raise result.problem
    response.headers["Location"] = location
    return to_read(result.job)


@router.get(
    "", response_model=JobPage, responses=problem_responses(400, 401, 422), summary="List jobs"
)
async def list_jobs(
    caller: CallerDep,
    session: SessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobPage:
    """The caller's jobs, newest first, a page at a time."""
    jobs, next_cursor = await jobs_service.list_jobs(
        session, caller, status=status_filter, limit=limit, cursor=cursor
    )
    return JobPage(data=[to_read(job) for job in jobs], next_cursor=next_cursor)


@router.get(
    "/{job_id}", response_model=JobRead, responses=problem_responses(401, 404), summary="Get a job"
)
async def get_job(job_id: uuid.UUID, caller: CallerDep, session: SessionDep) -> JobRead:
    """One of the caller's jobs."""
    return to_read(await jobs_service.get_job(session, caller, job_id))


@router.get(
    "/{job_id}/events",
    response_model=JobEventList,
    responses=problem_responses(401, 404),
    summary="A job's history",
)
async def list_job_events(
    job_id: uuid.UUID, caller: CallerDep, session: SessionDep
) -> JobEventList:
    """Every callback (and later poll) received for the job, oldest first."""
    events = await jobs_service.list_events(session, caller, job_id)
    return JobEventList(
        data=[
            JobEventRead(
                id=e.id,
                received_at=e.received_at,
                source=e.source,
                status=e.status,
                outcome=e.outcome,
                detail=e.detail,
                body=_parsed(e.body),
            )
            for e in events
        ]
    )


def to_read(job: Job) -> JobRead:
    """The API's view of a job."""
    copied = JobRead.model_fields.keys() - {"metadata", "error"}
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return JobRead.model_validate(
        {**{name: getattr(job, name) for name in copied}, "metadata": job.metadata_, "error": error}
    )


def _parsed(body: str | None) -> Any:
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body
