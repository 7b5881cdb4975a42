"""The archive's rules: which jobs' images to archive, what each attempt leaves behind, when a
job's archiving has ended, and who may read an image.

Services flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.archive import repository
from app.archive.models import ArchiveImage, ArchiveStatus, ImageStatus
from app.errors import AppError, ResourceNotFound
from app.events import changes
from app.jobs import service as jobs_service
from app.notifications import service as notifications_service

log = structlog.get_logger(__name__)

# EvoLink's result URLs stop working 24 hours after the image was generated.
SOURCE_TTL = timedelta(hours=24)


class ImageNotFound(ResourceNotFound):
    code, title = "image_not_found", "Image not found"


class ImageNotArchived(ResourceNotFound):
    code, title = "image_not_archived", "Image not archived"


class ImageExpired(AppError):
    status, code, title = 410, "image_expired", "Image expired"


async def finish_job_archive(session: AsyncSession, job_id: uuid.UUID, status: str) -> bool:
    """Archiving of this job has ended: `archived`, `failed` or `off`. True for the one call
    that ended it (it happens once per job); the caller commits.

    The one place a job's archiving ends: what must happen exactly then (the `completed`
    notification) belongs here, in the caller's transaction.
    """
    ended = await repository.set_archive_status(session, job_id, ArchiveStatus.PENDING, status)
    if ended:
        log.info("job_archive_ended", job_id=str(job_id), archive_status=status)
        await changes.announce(session, job_id)  # waiters see the archived images' URLs
        await notifications_service.archive_ended(session, job_id)
    return ended


async def start_pending_jobs(
    session: AsyncSession, *, enabled: bool, limit: int, now: datetime
) -> int:
    """Give each newly completed job one pending image row per result (or end its archiving
    at once: `off` when archiving is off, `archived` when it has no results); how many jobs."""
    jobs = await repository.jobs_to_start(session, limit)
    for job in jobs:
        if not enabled:
            await finish_job_archive(session, job.id, ArchiveStatus.OFF)
            continue
        if not job.results:
            await finish_job_archive(session, job.id, ArchiveStatus.ARCHIVED)
            continue
        completed_at = job.completed_at or now
        await repository.add_images(
            session,
            [
                ArchiveImage(
                    job_id=job.id,
                    index=index,
                    status=ImageStatus.PENDING,
                    source_url=url,
                    source_expires_at=completed_at + SOURCE_TTL,
                    job_completed_at=completed_at,
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                )
                for index, url in enumerate(job.results)
            ],
        )
    return len(jobs)


async def record_archived(
    session: AsyncSession, image: ArchiveImage, owner: str, stored: dict[str, Any]
) -> bool:
    """The image is in the store (`stored`: its columns); ends the job's archiving if it was
    the last one. False if `owner` no longer held the image."""
    await repository.lock_job(session, image.job_id)
    values = {**stored, "status": ImageStatus.ARCHIVED, "error_code": None, "error_message": None}
    values["attempts"] = image.attempts + 1
    if not await repository.update_claimed_image(session, image, owner, values):
        return False
    await _finish_if_done(session, image.job_id)
    return True


async def record_failed(
    session: AsyncSession, image: ArchiveImage, owner: str, code: str, message: str
) -> bool:
    """The image will never be archived; ends the job's archiving if it was the last one."""
    await repository.lock_job(session, image.job_id)
    values = {
        "status": ImageStatus.FAILED,
        "error_code": code,
        "error_message": message,
        "attempts": image.attempts + 1,
        "next_attempt_at": None,
    }
    if not await repository.update_claimed_image(session, image, owner, values):
        return False
    log.warning("image_archive_failed", job_id=str(image.job_id), index=image.index, code=code)
    await _finish_if_done(session, image.job_id)
    return True


async def schedule_retry(
    session: AsyncSession, image: ArchiveImage, owner: str, code: str, message: str, at: datetime
) -> bool:
    """This attempt failed in a way that may pass; try again at `at`."""
    values = {
        "error_code": code,
        "error_message": message,
        "attempts": image.attempts + 1,
        "next_attempt_at": at,
    }
    return await repository.update_claimed_image(session, image, owner, values)


async def _finish_if_done(session: AsyncSession, job_id: uuid.UUID) -> None:
    statuses = await repository.image_statuses(session, job_id)
    if ImageStatus.PENDING in statuses:
        return
    ok = all(s in (ImageStatus.ARCHIVED, ImageStatus.EXPIRED) for s in statuses)
    await finish_job_archive(
        session, job_id, ArchiveStatus.ARCHIVED if ok else ArchiveStatus.FAILED
    )


async def image_for_caller(
    session: AsyncSession, caller: str, job_id: uuid.UUID, index: int
) -> ArchiveImage:
    """The caller's job's archived image; JobNotFound, ImageNotFound, ImageNotArchived or
    ImageExpired otherwise (another caller's job is JobNotFound, as for every job route)."""
    job = await jobs_service.get_job(session, caller, job_id)
    if not 0 <= index < len(job.results):
        raise ImageNotFound(f"job {job_id} has no image {index}")
    image = await repository.get_image(session, job_id, index)
    if image is not None and image.status == ImageStatus.EXPIRED:
        raise ImageExpired(f"image {index} of job {job_id} was deleted by the retention policy")
    if image is None or image.status != ImageStatus.ARCHIVED:
        raise ImageNotArchived(f"image {index} of job {job_id} is not archived (yet)")
    return image


async def archived_images_by_job(
    session: AsyncSession, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ArchiveImage]]:
    """Each job's archived images, by index."""
    by_job: dict[uuid.UUID, list[ArchiveImage]] = defaultdict(list)
    if not job_ids:
        return by_job
    for image in await repository.archived_images(session, job_ids):
        by_job[image.job_id].append(image)
    return by_job


async def backfill(session: AsyncSession, now: datetime) -> int:
    """Queue completed jobs that have no archive and whose EvoLink links still work; how many."""
    return await repository.mark_for_backfill(session, now - SOURCE_TTL)
