"""Sending a job's create request to EvoLink, and recording what came of it.

Used by the API (at once, when a slot is free) and by background work (queued jobs). A request
that may have reached EvoLink is never sent again: EvoLink has no idempotency key, so a resend
could create, and bill, a second task.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.callbacks.tokens import CallbackSigner
from app.config import Settings
from app.db import utcnow
from app.errors import AppError, JobNotFound
from app.evolink import errors as evolink_errors
from app.evolink.client import EvolinkClient
from app.evolink.schemas import CreateTaskRequest, Task
from app.jobs import errors, repository
from app.jobs.lifecycle import job_changed
from app.jobs.models import EventOutcome, EventSource, Job, JobStatus, SubmitState
from app.jobs.policy import Policy, process_identity
from app.jobs.state_machine import Observation, apply_observation

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SubmitResult:
    """The job after submission, and the problem to answer with when EvoLink said no."""

    job: Job
    problem: AppError | None = None


class Submitter:
    """Sends claimed jobs to EvoLink, at most `concurrency` at once in this process."""

    def __init__(
        self,
        evolink: EvolinkClient,
        signer: CallbackSigner,
        policy: Policy,
        owner: str,
        concurrency: int,
    ) -> None:
        self.evolink = evolink
        self.signer = signer
        self.policy = policy
        self.owner = owner
        self._slots = asyncio.Semaphore(concurrency)

    @classmethod
    def from_settings(cls, settings: Settings, http: httpx.AsyncClient) -> Submitter:
        """The submitter the settings describe, for a process named by `process_identity()`."""
        if not (settings.evolink_api_key and settings.public_base_url and settings.callback_secret):
            raise ValueError("EVOLINK_API_KEY, PUBLIC_BASE_URL and CALLBACK_SECRET are required")
        return cls(
            EvolinkClient(http, settings.evolink_api_key),
            CallbackSigner(settings.public_base_url, settings.callback_secret),
            Policy.from_settings(settings),
            owner=process_identity(),
            concurrency=settings.submit_concurrency,
        )

    @asynccontextmanager
    async def free_slot(self) -> AsyncIterator[bool]:
        """Take a submission slot if one is free right now; yields whether it did."""
        if self._slots.locked():
            yield False
            return
        async with self._slots:
            yield True

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a submission slot."""
        async with self._slots:
            yield

    def claim_values(self, attempt: int) -> dict[str, object]:
        """Columns that mark a job as being sent now, for the `attempt`-th time, by us."""
        now = utcnow()
        lease = self.policy.lease_until(now)
        return {
            "submit_state": SubmitState.SENDING,
            "submit_attempts": attempt,
            "submitted_at": now,
            "claimed_by": self.owner,
            "claim_expires_at": lease,
            # If this process dies mid-send, the job comes due when the claim lapses.
            "next_attempt_at": lease,
        }

    async def send(self, session: AsyncSession, job: Job) -> SubmitResult:
        """Send a job claimed (state `sending`, committed) by this process; the caller commits."""
        return await self.record(session, job, await self.ask(job))

    async def ask(self, job: Job) -> Task | evolink_errors.EvolinkError:
        """EvoLink's answer to a job's create request (claimed by this process): its task, or
        the error it answered with; `record` it."""
        request = task_request(job, self.signer.url_for(job.id))
        try:
            return await self.evolink.create_task(request)
        except evolink_errors.EvolinkError as exc:
            return exc

    async def record(
        self, session: AsyncSession, job: Job, answer: Task | evolink_errors.EvolinkError
    ) -> SubmitResult:
        """Apply EvoLink's `answer` to a job this process sent and release it; the caller
        commits."""
        if isinstance(answer, evolink_errors.EvolinkError):
            return await self._record_failure(session, job, answer)
        task = answer
        now = utcnow()
        result = await apply_observation(
            session,
            job.id,
            Observation(task, EventSource.SUBMIT, task.model_dump_json(exclude_none=True)),
            next_check_at=self.policy.first_poll_at(now, task.estimated_time),
        )
        if result.task_mismatch:
            log.error("submission_task_mismatch", job_id=str(job.id), evolink_task_id=task.id)
        elif result.outcome is not EventOutcome.APPLIED:
            # A callback overtook the create answer; keep what only the answer carries.
            details = {"usage": task.usage, "estimated_time": task.estimated_time}
            await repository.fill_missing_details(
                session, job.id, {k: v for k, v in details.items() if v is not None}
            )
        # A callback may have overtaken our answer (EvoLink calls back final states only) and
        # await confirmation: then ask EvoLink now, not after the estimate our answer scheduled.
        await repository.hurry_overtaken(session, job.id, now)
        await self._release(session, job.id)
        return SubmitResult(await _reload(session, job.id))

    async def _record_failure(
        self, session: AsyncSession, job: Job, exc: evolink_errors.EvolinkError
    ) -> SubmitResult:
        now = utcnow()
        submitted_at = job.submitted_at or now
        values: dict[str, object]
        problem: AppError | None = None
        match exc:
            case evolink_errors.EvolinkRateLimited() | evolink_errors.EvolinkUnavailable():
                retry_after = getattr(exc, "retry_after", None)
                values = {
                    "submit_state": SubmitState.WAITING,
                    "next_attempt_at": self.policy.next_submit_at(
                        now, job.submit_attempts, retry_after
                    ),
                }
                event = "submission_deferred"
            case evolink_errors.EvolinkOutcomeUnknown():
                values = {
                    "submit_state": SubmitState.UNKNOWN,
                    "next_attempt_at": self.policy.unknown_deadline(submitted_at),
                }
                event = "submission_outcome_unknown"
            case _:
                problem, code = refusal_problem(exc)
                problem.extensions["job_id"] = str(job.id)
                values = {
                    "status": JobStatus.FAILED,
                    "submit_state": SubmitState.DONE,
                    "error_code": code,
                    "error_message": exc.message,
                    "completed_at": now,
                    "final_source": EventSource.SUBMIT,
                    "next_attempt_at": None,
                }
                event = "submission_refused"
        log.warning(event, job_id=str(job.id), status=exc.status, code=exc.code, error=exc.message)
        recorded = await repository.update_job_if(
            session,
            job.id,
            [JobStatus.QUEUED],
            {**values, "updated_at": now},
            submit_state=SubmitState.SENDING,
        )
        if recorded and problem is not None:
            await job_changed(session, job.id, JobStatus.FAILED, EventSource.SUBMIT)
        await self._release(session, job.id)
        return SubmitResult(await _reload(session, job.id), problem)

    async def _release(self, session: AsyncSession, job_id: uuid.UUID) -> None:
        await repository.release_claim(session, job_id, self.owner)


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


def refusal_problem(exc: evolink_errors.EvolinkError) -> tuple[AppError, str]:
    """The caller's problem and the job's error code for a definite refusal by EvoLink."""
    match exc:
        case evolink_errors.EvolinkAuthFailed():
            detail = "EvoLink refused this service's API key or model access; tell the operators."
            return errors.GatewayMisconfigured(detail), "evolink_auth_failed"
        case evolink_errors.EvolinkOutOfCredits():
            detail = "EvoLink reports insufficient credits; tell the operators."
            return errors.GatewayOutOfCredits(detail), "evolink_out_of_credits"
        case _:
            code = exc.code or f"evolink_http_{exc.status}"
            problem = errors.EvolinkRejected(
                exc.message, evolink_code=code, evolink_status=exc.status
            )
            return problem, code


async def _reload(session: AsyncSession, job_id: uuid.UUID) -> Job:
    job = await repository.get_job(session, job_id)
    if job is None:
        raise JobNotFound(f"job {job_id} vanished")
    return job
