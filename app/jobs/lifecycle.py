"""The one hook for what must happen together with a change to a job, in the same transaction.

Every applied change of a job's status or progress calls `job_changed` before its caller
commits: EvoLink's observations (create answer, callbacks, polls) through the state machine,
our own verdicts (`fail_locally`) and a refused submission. What must never be lost when a job
changes (an outbox row, a ledger entry, a wake-up for waiters) is added here, so that it
commits or rolls back with the change itself.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.events import changes
from app.jobs.models import EventSource, JobStatus
from app.metrics import job_finished
from app.notifications import service as notifications_service
from app.spend import service as spend_service


async def job_changed(
    session: AsyncSession, job_id: uuid.UUID, status: JobStatus, source: EventSource
) -> None:
    """`job_id` now has `status` (or new progress) because of `source`; the caller commits."""
    if status.is_final:
        job_finished(source, status)
        await notifications_service.job_ended(session, job_id, status)
    await spend_service.job_changed(session, job_id, status, source)
    await changes.announce(session, job_id)
