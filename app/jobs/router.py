"""The jobs API: HTTP only. Parse, call the service, commit, return."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse

from app.archive import service as archive_service
from app.archive.models import ArchiveImage, ArchiveStatus
from app.archive.schemas import image_read
from app.auth.dependencies import CallerDep
from app.db import ReadSessionDep, SessionDep, utcnow
from app.dependencies import SettingsDep, SubmitterDep, wake_worker
from app.errors import PROBLEM_JSON, AppError, problem_response
from app.events import service as waits_service
from app.events.prefer import PreferWaitDep, preference_applied, waited_response
from app.events.waiters import WaitersDep
from app.jobs import events as job_events
from app.jobs import idempotency
from app.jobs import service as jobs_service
from app.jobs.models import Job, JobStatus
from app.jobs.schemas import (
    JOB_READ_COLUMNS,
    JobCreate,
    JobEventPage,
    JobPage,
    JobRead,
    job_read,
)
from app.notifications import service as notifications_service
from app.openapi import problem_responses
from app.spend import service as spend_service
from app.spend.dependencies import SpendPolicyDep

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses={**problem_responses(400, 401, 409, 422, 429, 502, 503), **waited_response(202)},
    summary="Submit a generation job",
)
async def create_job(
    body: JobCreate,
    caller: CallerDep,
    session: SessionDep,
    submitter: SubmitterDep,
    settings: SettingsDep,
    request: Request,
    spend: SpendPolicyDep,
    waiters: WaitersDep,
    wait: PreferWaitDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Repeat a request safely: the same key and body return the first job.",
        ),
    ] = None,
) -> Response:
    """Store the job and submit it to EvoLink (or queue it); 202 with the job."""
    if body.notify_url is not None:
        await notifications_service.check_notify_url(settings, caller, body.notify_url)
    key = idempotency.check_key(idempotency_key) if idempotency_key is not None else None
    digest = idempotency.fingerprint(body)
    async with submitter.free_slot() as sending:
        submission = submitter.claim_values(1) if sending else {"next_attempt_at": utcnow()}

        async def new_job() -> Job:
            # Refused creates (out of credits, over a limit) raise and leave nothing behind.
            await spend_service.refuse_early(session, spend, caller, body)
            job = await jobs_service.create_job(session, caller, body, submission)
            await spend_service.reserve(session, spend, job)
            return job

        if key is None:
            job = await new_job()
        else:
            replay = await _replay(session, caller, key, digest, settings)
            if replay is not None:
                return replay
            claimed = await idempotency.claim(session, caller, key, digest, new_job)
            if claimed is None:  # another request took the key between our look and our insert
                await session.rollback()
                replay = await _replay(session, caller, key, digest, settings)
                assert replay is not None
                return replay
            job = claimed
        await session.commit()
        if sending:
            result = await submitter.send(session, job)
            job, problem = result.job, result.problem
        else:
            wake_worker(request)
            problem = None

    response = _answer(job, problem)
    if key is not None:
        await idempotency.complete(
            session, caller, key, response.status_code, json.loads(bytes(response.body))
        )
    await session.commit()
    if wait is not None and problem is None:
        location = {"Location": f"/v1/jobs/{job.id}"}
        return await _waited(waiters, caller, job.id, wait, status.HTTP_202_ACCEPTED, location)
    return response


def _answer(job: Job, problem: AppError | None) -> JSONResponse:
    location = {"Location": f"/v1/jobs/{job.id}"}
    if problem is not None:
        return problem_response(problem, location)
    body = to_read(job).model_dump(mode="json")
    return JSONResponse(body, status_code=status.HTTP_202_ACCEPTED, headers=location)


async def _replay(
    session: SessionDep, caller: str, key: str, digest: str, settings: SettingsDep
) -> JSONResponse | None:
    replay = await idempotency.find(
        session,
        caller,
        key,
        digest,
        ttl_seconds=settings.idempotency_key_ttl_seconds,
        in_flight_seconds=settings.evolink_timeout_seconds + settings.claim_lease_seconds,
    )
    if replay is None:
        return None
    body = replay.body or to_read(replay.job).model_dump(mode="json")
    headers = {"Location": f"/v1/jobs/{replay.job.id}", "Idempotent-Replayed": "true"}
    media_type = PROBLEM_JSON if replay.status >= 400 else "application/json"
    return JSONResponse(body, status_code=replay.status, headers=headers, media_type=media_type)


@router.get(
    "", response_model=JobPage, responses=problem_responses(400, 401, 422), summary="List jobs"
)
async def list_jobs(
    caller: CallerDep,
    session: ReadSessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobPage:
    """The caller's jobs, newest first, a page at a time."""
    jobs, next_cursor = await jobs_service.list_jobs(
        session, caller, status=status_filter, limit=limit, cursor=cursor
    )
    images = await archive_service.archived_images_by_job(session, _with_images(jobs))
    return JobPage(data=[to_read(job, images[job.id]) for job in jobs], next_cursor=next_cursor)


@router.get(
    "/{job_id}",
    response_model=JobRead,
    responses={**problem_responses(401, 404, 422), **waited_response(200)},
    summary="Get a job",
)
async def get_job(
    job_id: uuid.UUID,
    caller: CallerDep,
    session: ReadSessionDep,
    waiters: WaitersDep,
    wait: PreferWaitDep,
) -> Response | JobRead:
    """One of the caller's jobs; with `Prefer: wait=N`, once it is final or N seconds pass."""
    if wait is not None:
        return await _waited(waiters, caller, job_id, wait, status.HTTP_200_OK, {})
    job = await jobs_service.get_job(session, caller, job_id)
    images = await archive_service.archived_images_by_job(session, _with_images([job]))
    return to_read(job, images[job.id])


@router.get(
    "/{job_id}/events",
    response_model=JobEventPage,
    responses=problem_responses(400, 401, 404, 422),
    summary="A job's history",
)
async def list_job_events(
    job_id: uuid.UUID,
    caller: CallerDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobEventPage:
    """Every submit answer, callback, poll and local verdict for the job, oldest first, a page
    at a time."""
    page, next_cursor = await job_events.list_page(
        session, caller, job_id, limit=limit, cursor=cursor
    )
    return JobEventPage(data=[job_events.to_read(e) for e in page], next_cursor=next_cursor)


async def _waited(
    waiters: WaitersDep,
    caller: str,
    job_id: uuid.UUID,
    seconds: int,
    status_code: int,
    headers: dict[str, str],
) -> JSONResponse:
    """The job once final or after `seconds` (`Prefer: wait`), holding no connection meanwhile."""
    snapshot = await waits_service.wait_until_final(
        waiters.hub, waiters.sessions, caller, job_id, seconds
    )
    body = to_read(snapshot.job, snapshot.images).model_dump(mode="json")
    return JSONResponse(
        body, status_code=status_code, headers={**headers, **preference_applied(seconds)}
    )


def _with_images(jobs: Sequence[Job]) -> list[uuid.UUID]:
    # Only a job whose archiving began can have images: the others cost no query.
    return [job.id for job in jobs if job.archive_status not in (None, ArchiveStatus.OFF)]


def to_read(job: Job, images: Sequence[ArchiveImage] = ()) -> JobRead:
    """The API's view of a job, with its archived `images`."""
    values = {name: getattr(job, name) for name in JOB_READ_COLUMNS}
    values["metadata"] = job.metadata_
    return job_read(values, [image_read(image) for image in images])
