"""What background work does with one claimed job: submit it, poll it, or give it up."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.evolink import errors as evolink_errors
from app.evolink.schemas import Task
from app.hot import claims as hot_claims
from app.hot.applying import apply_final, apply_submit_answer
from app.hot.database import HotDatabase, HotPathFailed
from app.jobs import repository
from app.jobs.models import EventSource, Job, JobStatus, SubmitState
from app.jobs.state_machine import (
    LOCAL_VERDICTS,
    NON_FINAL,
    Observation,
    apply_observation,
    fail_locally,
    target_status,
    unbind_unconfirmed_task,
)
from app.jobs.submission import Submitter
from app.metrics import HOT_PATHS
from app.spend import service as spend_service

log = structlog.get_logger(__name__)


def _not_a_task(exc: evolink_errors.EvolinkError) -> bool:
    """Whether EvoLink's answer says the id asked about is no task: refused as a request (400
    `invalid_task_id`), or answered 2xx with something that is not that task."""
    if isinstance(exc, evolink_errors.EvolinkRequestRejected):
        return True
    return isinstance(exc, evolink_errors.EvolinkOutcomeUnknown) and 200 <= (exc.status or 0) < 300


class JobActions:
    """The rules for a due job; each step is its own short transaction."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        submitter: Submitter,
        out_of_credits_backoff_seconds: float = 30.0,
        hot: HotDatabase | None = None,
    ):
        self.sessions = session_factory
        self.submitter = submitter
        self.out_of_credits_backoff_seconds = out_of_credits_backoff_seconds
        self.hot = hot
        self.policy = submitter.policy
        self.owner = submitter.owner

    async def handle(self, job: Job) -> None:
        """Do whatever is due for a job this process has claimed, then let go of it."""
        structlog.contextvars.bind_contextvars(
            job_id=str(job.id), evolink_task_id=job.evolink_task_id
        )
        released = False
        try:
            released = await self._dispatch(job)
        finally:
            if not released:
                await self._release(job)

    async def _release(self, job: Job) -> None:
        if self.hot is not None and self.hot.available:
            try:
                await hot_claims.release_claim(self.hot, job.id, self.owner)
                return
            except HotPathFailed as failed:
                self.hot.step_aside(failed.error)
        async with self.sessions() as session:
            await repository.release_claim(session, job.id, self.owner)
            await session.commit()

    async def _dispatch(self, job: Job) -> bool:
        """Do what is due; True if that let go of the claim already (a send records EvoLink's
        answer and releases the job in one statement)."""
        # A bound task is asked about first: a queued job is bound only by a deferred callback,
        # which EvoLink must confirm (or deny) before the submission goes on.
        if job.evolink_task_id and (job.status in NON_FINAL or job.error_code in LOCAL_VERDICTS):
            await self.poll(job)
        elif job.status == JobStatus.QUEUED and job.submit_state != SubmitState.DONE:
            return await self._advance_submission(job)
        else:
            await self._reschedule(job, None)
        return False

    async def _advance_submission(self, job: Job) -> bool:
        now = utcnow()
        match job.submit_state:
            case SubmitState.WAITING if now >= self.policy.deadline(job.created_at):
                await self._fail(job, "deadline_exceeded", "EvoLink could not be reached in time")
            case SubmitState.WAITING:
                if await self._sent_hot(job):
                    return True
                if (held := await self._out_of_credits_until()) is not None:
                    # EvoLink said 402 a moment ago: the job waits out the back-off rather than
                    # fail on a 402 of its own (as a new create is refused, not accepted).
                    log.info("submission_held", job_id=str(job.id), until=held.isoformat())
                    await self._reschedule(job, held)
                else:
                    await self.submit(job)
            case SubmitState.SENDING:
                # Our claim lapsed while the request was on the wire: it may have reached EvoLink.
                log.warning("submission_interrupted", job_id=str(job.id))
                deadline = self.policy.unknown_deadline(job.submitted_at or job.created_at)
                await self._update_queued(
                    job, {"submit_state": SubmitState.UNKNOWN, "next_attempt_at": deadline}
                )
            case _:
                deadline = self.policy.unknown_deadline(job.submitted_at or job.created_at)
                if now >= deadline:
                    await self._fail(
                        job,
                        "submission_unknown",
                        "EvoLink may have received the job but never confirmed it",
                    )
                else:
                    await self._reschedule(job, deadline)
        return False

    async def submit(self, job: Job) -> None:
        """Send a waiting job, when a submission slot is free."""
        async with self.submitter.slot(), self.sessions() as session:
            claimed = await repository.update_job_if(
                session,
                job.id,
                [JobStatus.QUEUED],
                self.submitter.claim_values(job.submit_attempts + 1),
                submit_state=SubmitState.WAITING,
                claimed_by=self.owner,
            )
            fresh = await repository.get_job(session, job.id) if claimed else None
            # Commit before the call: no transaction is held open across EvoLink.
            await session.commit()
            if fresh is None:
                return
            answer = await self.submitter.ask(fresh)
            if not await self._applied_hot(fresh, answer):
                await self.submitter.record(session, fresh, answer)
                await session.commit()

    async def _sent_hot(self, job: Job) -> bool:
        """Send a waiting job over the hot pool in the common case (no back-off in force, the
        job still waiting): True once EvoLink's answer is recorded and the claim let go of;
        False, having written nothing, if it is not that case."""
        if self.hot is None or not self.hot.available:
            return False
        async with self.submitter.slot():
            now = utcnow()
            values = self.submitter.claim_values(job.submit_attempts + 1)
            backoff = self.out_of_credits_backoff_seconds
            try:
                fresh = await hot_claims.claim_for_sending(
                    self.hot, job.id, self.owner, values, backoff, now
                )
            except HotPathFailed as failed:
                self.hot.step_aside(failed.error)
                return False
            if fresh is None:
                return False
            answer = await self.submitter.ask(fresh)
            if not await self._applied_hot(fresh, answer):
                async with self.sessions() as session:
                    await self.submitter.record(session, fresh, answer)
                    await session.commit()
        return True

    async def _applied_hot(self, job: Job, answer: Task | evolink_errors.EvolinkError) -> bool:
        """Whether EvoLink's create answer was applied over the hot pool (its common case)."""
        if self.hot is None or not self.hot.available or not isinstance(answer, Task):
            return False
        next_check_at = self.policy.first_poll_at(utcnow(), answer.estimated_time)
        try:
            row = await apply_submit_answer(self.hot, job.id, answer, self.owner, next_check_at)
        except HotPathFailed as failed:
            self.hot.step_aside(failed.error)
            HOT_PATHS.labels(path="submit", outcome="stepped_aside").inc()
            return False
        HOT_PATHS.labels(path="submit", outcome="passed_on" if row is None else "answered").inc()
        return row is not None

    async def _out_of_credits_until(self) -> datetime | None:
        async with self.sessions() as session:
            return await spend_service.out_of_credits_until(
                session, self.out_of_credits_backoff_seconds
            )

    async def poll(self, job: Job) -> None:
        """Ask EvoLink for the task's state and apply it like a callback."""
        assert job.evolink_task_id is not None
        now = utcnow()
        attempts = job.poll_attempts + 1
        next_poll = self.policy.next_poll_at(now, attempts, job.created_at)
        try:
            task = await self.submitter.evolink.get_task(job.evolink_task_id)
            if task.id != job.evolink_task_id:
                raise evolink_errors.EvolinkOutcomeUnknown(
                    "EvoLink answered with another task than the one asked for", status=200
                )
        except evolink_errors.EvolinkTaskNotFound:
            await self._task_not_found(job, job.evolink_task_id)
            return
        except evolink_errors.EvolinkError as exc:
            if job.submit_state != SubmitState.DONE and _not_a_task(exc):
                # Only a callback named this id, and EvoLink does not answer it as a task.
                await self._task_not_found(job, job.evolink_task_id)
                return
            log.warning("poll_failed", job_id=str(job.id), status=exc.status, error=exc.message)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after:
                next_poll = self.policy.next_poll_at(now, attempts, job.created_at, retry_after)
            await self._after_poll(job, attempts, next_poll, answered=False)
            return
        observation = Observation(task, EventSource.POLL, task.model_dump_json(exclude_none=True))
        if await self._applied_final(job, observation, attempts):
            return
        async with self.sessions() as session:
            await apply_observation(session, job.id, observation, next_check_at=next_poll)
            # What is next for the job commits with what EvoLink said: one transaction.
            await self._schedule_after_poll(session, job, attempts, next_poll, answered=True)
            await session.commit()

    async def _applied_final(self, job: Job, observation: Observation, attempts: int) -> bool:
        """The common end of a job (EvoLink's final answer, which changes it) applied in one
        transaction of prepared statements, poll counted; False when that is not the case (or
        the hot pool is away), for `apply_observation` to apply or classify."""
        status = target_status(observation.task)
        if self.hot is None or not self.hot.available or status is None or not status.is_final:
            return False
        try:
            applied = await apply_final(
                self.hot, job.id, observation, status, also={"poll_attempts": attempts}
            )
        except HotPathFailed as failed:
            # Nothing was written (one transaction): the session path meets the outage, if
            # it lasts, and deals with it as it always has.
            self.hot.step_aside(failed.error)
            HOT_PATHS.labels(path="poll", outcome="stepped_aside").inc()
            return False
        HOT_PATHS.labels(path="poll", outcome="answered" if applied else "passed_on").inc()
        return applied

    async def _after_poll(
        self, job: Job, attempts: int, next_poll: datetime, *, answered: bool
    ) -> None:
        async with self.sessions() as session:
            await self._schedule_after_poll(session, job, attempts, next_poll, answered=answered)
            await session.commit()

    async def _schedule_after_poll(
        self,
        session: AsyncSession,
        job: Job,
        attempts: int,
        next_poll: datetime,
        *,
        answered: bool,
    ) -> None:
        """Count the poll and set when the job is due again (or fail it past its deadline)."""
        fresh = await repository.get_job(session, job.id)
        if fresh is None:
            return
        now = utcnow()
        values: dict[str, object] = {"poll_attempts": attempts}
        if fresh.status in NON_FINAL and now >= self.policy.deadline(job.created_at):
            await fail_locally(
                session, job.id, "deadline_exceeded", "EvoLink did not finish the task in time"
            )
        elif fresh.status in NON_FINAL:
            values["next_attempt_at"] = next_poll
        elif not answered and fresh.error_code in LOCAL_VERDICTS:
            # A late final callback awaits EvoLink's confirmation: losing it to one failed
            # poll would lose a real result, so keep asking for a while.
            values["next_attempt_at"] = self.policy.next_confirmation_at(
                now, attempts, fresh.completed_at or now
            )
        else:
            values["next_attempt_at"] = None
        await repository.update_job_if(session, job.id, list(JobStatus), values)

    async def _task_not_found(self, job: Job, task_id: str) -> None:
        async with self.sessions() as session:
            if job.submit_state != SubmitState.DONE:
                # Only a callback named this task; it may have been forged.
                await unbind_unconfirmed_task(
                    session, job.id, task_id, f"EvoLink does not know task {task_id}; unbound"
                )
            elif not await fail_locally(
                session, job.id, "task_not_found", "EvoLink no longer knows this task"
            ):
                # Already final (a late callback for a job we gave up): nothing more to ask.
                await repository.update_job_if(
                    session, job.id, list(JobStatus), {"next_attempt_at": None}
                )
            await session.commit()

    async def _fail(self, job: Job, code: str, message: str) -> None:
        async with self.sessions() as session:
            await fail_locally(session, job.id, code, message)
            await session.commit()

    async def _update_queued(self, job: Job, values: dict[str, object]) -> None:
        async with self.sessions() as session:
            await repository.update_job_if(session, job.id, [JobStatus.QUEUED], values)
            await session.commit()

    async def _reschedule(self, job: Job, when: datetime | None) -> None:
        async with self.sessions() as session:
            await repository.update_job_if(
                session, job.id, list(JobStatus), {"next_attempt_at": when}
            )
            await session.commit()
