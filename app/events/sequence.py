"""A job's place in its own history, as one number: the event id of its stream.

A job only moves forward (app/jobs/state_machine.py): its status rank never goes down, its
progress never goes down within a status, a final state changes only when EvoLink's real answer
overturns our own timeout verdict, and its archiving goes `pending` → ended once. So a number
built from those, in that order, grows with every change and can be computed by any replica from
the row alone: no column, no counter, and `Last-Event-ID` means the same on every replica.
"""

from __future__ import annotations

from typing import Protocol

from app.archive.models import ArchiveStatus
from app.jobs.models import JobStatus
from app.jobs.state_machine import LOCAL_VERDICTS, RANK

# Ranks 0..2 are the unfinished statuses; a final state overturnable by EvoLink ranks below one
# it cannot overturn.
_OVERTURNABLE_FINAL_RANK = 3
_FINAL_RANK = 4


class JobState(Protocol):
    """The columns a job's sequence is made of."""

    @property
    def status(self) -> str: ...
    @property
    def progress(self) -> int: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def archive_status(self) -> str | None: ...


def sequence(job: JobState) -> int:
    """The job's sequence, `RPPPA` as digits: status rank, progress (0..100), archive stage."""
    status = JobStatus(job.status)
    if not status.is_final:
        rank = RANK[status]
    elif status is JobStatus.FAILED and job.error_code in LOCAL_VERDICTS:
        rank = _OVERTURNABLE_FINAL_RANK
    else:
        rank = _FINAL_RANK
    if job.archive_status is None:
        archive = 0
    elif job.archive_status == ArchiveStatus.PENDING:
        archive = 1
    else:
        archive = 2
    return rank * 10_000 + max(0, min(100, job.progress)) * 10 + archive


def is_final(job: JobState) -> bool:
    """Whether the job's status is final (what `Prefer: wait` waits for)."""
    return JobStatus(job.status).is_final


def is_settled(job: JobState) -> bool:
    """Whether the job will not change any more: final, and its archiving (if any) ended.

    A stream ends here, so that its last event carries the archived images' URLs.
    """
    return is_final(job) and job.archive_status != ArchiveStatus.PENDING
