"""The console's rules: who sees which jobs, what a page of jobs is, and one job's story.

A caller sees only its own jobs; an admin caller sees every caller's (and may filter by caller).
Another caller's job is JobNotFound, as in the API. Services flush but never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.archive import service as archive_service
from app.archive.models import ArchiveImage
from app.auth.callers import Caller
from app.errors import JobNotFound
from app.jobs import repository as jobs_repository
from app.jobs.models import Job, JobEvent, JobStatus
from app.jobs.pagination import decode_cursor, encode_cursor
from app.notifications import service as notifications_service
from app.notifications.models import Notification, NotificationAttempt
from app.web import repository
from app.web.errors import InvalidFilter

PAGE_SIZE = 50
MAX_PROMPT_SEARCH_CHARS = 200


@dataclass(frozen=True)
class JobQuery:
    """The jobs page's filters, as the viewer gave them (validated)."""

    status: str | None = None
    day_from: date | None = None
    day_to: date | None = None
    prompt: str | None = None
    caller: str | None = None

    def params(self) -> dict[str, str]:
        """The filters as query parameters (for links that keep them)."""
        values = {
            "status": self.status,
            "from": self.day_from.isoformat() if self.day_from else None,
            "to": self.day_to.isoformat() if self.day_to else None,
            "q": self.prompt,
            "caller": self.caller,
        }
        return {name: value for name, value in values.items() if value}


def parse_query(
    status: str | None,
    day_from: str | None,
    day_to: str | None,
    prompt: str | None,
    caller: str | None,
) -> JobQuery:
    """The filters from a form (empty fields mean "any"); InvalidFilter names a bad one."""
    status = status or None
    if status is not None and status not in set(JobStatus):
        raise InvalidFilter(f"status must be one of: {', '.join(JobStatus)}")
    prompt = (prompt or "").strip() or None
    if prompt is not None and len(prompt) > MAX_PROMPT_SEARCH_CHARS:
        raise InvalidFilter(
            f"the prompt search is longer than {MAX_PROMPT_SEARCH_CHARS} characters"
        )
    query = JobQuery(status, _day("from", day_from), _day("to", day_to), prompt, caller or None)
    if query.day_from and query.day_to and query.day_from > query.day_to:
        raise InvalidFilter("the date 'from' is after the date 'to'")
    return query


def _day(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidFilter(f"the date '{name}' must be a date, YYYY-MM-DD") from None


def _filter(viewer: Caller, query: JobQuery) -> repository.JobFilter:
    def start(day: date | None) -> datetime | None:
        return datetime.combine(day, time(), UTC) if day else None

    return repository.JobFilter(
        caller=query.caller if viewer.admin else viewer.name,
        status=query.status,
        created_from=start(query.day_from),
        created_before=start(query.day_to + timedelta(days=1)) if query.day_to else None,
        prompt=query.prompt,
    )


@dataclass(frozen=True)
class JobRows:
    """Jobs to show as rows, with their archived images."""

    jobs: Sequence[Job]
    images: dict[uuid.UUID, list[ArchiveImage]]
    next_cursor: str | None = None

    @property
    def newest_cursor(self) -> str | None:
        """The keyset position of the first (newest) row."""
        return encode_cursor(self.jobs[0].created_at, self.jobs[0].id) if self.jobs else None


async def _with_images(
    session: AsyncSession, jobs: Sequence[Job], next_cursor: str | None = None
) -> JobRows:
    images = await archive_service.archived_images_by_job(session, [job.id for job in jobs])
    return JobRows(jobs, images, next_cursor)


async def job_page(
    session: AsyncSession, viewer: Caller, query: JobQuery, cursor: str | None
) -> JobRows:
    """One page of the jobs the viewer may see, newest first, and the cursor of the next."""
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.list_jobs(
        session, _filter(viewer, query), limit=PAGE_SIZE + 1, older_than=after
    )
    page = rows[:PAGE_SIZE]
    more = len(rows) > PAGE_SIZE
    return await _with_images(
        session, page, encode_cursor(page[-1].created_at, page[-1].id) if more else None
    )


async def newer_jobs(
    session: AsyncSession, viewer: Caller, query: JobQuery, since: str | None
) -> JobRows:
    """The matching jobs created after the keyset position `since` (at most a page)."""
    position = decode_cursor(since) if since else None
    rows = await repository.list_jobs(
        session, _filter(viewer, query), limit=PAGE_SIZE, newer_than=position
    )
    return await _with_images(session, rows)


async def visible_job(session: AsyncSession, viewer: Caller, job_id: uuid.UUID) -> Job:
    """A job the viewer may see; JobNotFound for unknown ids and other callers' jobs alike."""
    job = await jobs_repository.get_job(session, job_id)
    if job is None or not (viewer.admin or job.caller == viewer.name):
        raise JobNotFound(f"no job {job_id}")
    return job


async def job_row(session: AsyncSession, viewer: Caller, job_id: uuid.UUID) -> JobRows:
    """One visible job as a row."""
    return await _with_images(session, [await visible_job(session, viewer, job_id)])


TIMELINE_PAGE = 200


@dataclass(frozen=True)
class JobDetail:
    """Everything the job page shows: `events` is one page of the timeline, and
    `more_after` the id of its last event when later ones exist."""

    job: Job
    images: list[ArchiveImage]
    events: Sequence[JobEvent]
    more_after: int | None = None
    notifications: list[tuple[Notification, list[NotificationAttempt]]] = field(
        default_factory=list
    )


async def job_detail(
    session: AsyncSession, viewer: Caller, job_id: uuid.UUID, events_after: int | None = None
) -> JobDetail:
    """A visible job with its archived images and a page of its events, oldest first (after
    event `events_after`, when given)."""
    job = await visible_job(session, viewer, job_id)
    images = await archive_service.archived_images_by_job(session, [job.id])
    events = await jobs_repository.list_events(
        session, job.id, limit=TIMELINE_PAGE + 1, after_id=events_after
    )
    page = events[:TIMELINE_PAGE]
    more_after = page[-1].id if len(events) > TIMELINE_PAGE else None
    notifications = await notifications_service.list_notifications(session, job.caller, job.id)
    return JobDetail(job, images[job.id], page, more_after, notifications)


async def deliver_again(
    session: AsyncSession, viewer: Caller, job_id: uuid.UUID, event_id: str
) -> None:
    """Deliver a visible job's webhook event again now (the API's retry, for the console)."""
    job = await visible_job(session, viewer, job_id)
    await notifications_service.retry_now(session, job.caller, job.id, event_id)


async def viewer_image(
    session: AsyncSession, viewer: Caller, job_id: uuid.UUID, index: int
) -> ArchiveImage:
    """An archived image of a visible job (the archive's own errors otherwise)."""
    job = await visible_job(session, viewer, job_id)
    return await archive_service.image_for_caller(session, job.caller, job_id, index)


async def caller_choices(session: AsyncSession, known: Sequence[str]) -> list[str]:
    """The callers an admin may filter by: configured ones and any that own jobs."""
    return sorted({*known, *await repository.job_callers(session)})
