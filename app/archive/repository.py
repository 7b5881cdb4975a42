"""The SQL for archived images (and the archive columns of jobs), and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Select, Uuid, any_, bindparam, exists, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.archive.models import ArchiveImage, ArchiveStatus, ImageStatus
from app.jobs.models import Job, JobStatus


async def jobs_to_start(session: AsyncSession, limit: int) -> Sequence[Job]:
    """Completed jobs whose archiving is pending but has no image rows yet, locked for us."""
    query = (
        select(Job)
        .where(
            Job.archive_status == ArchiveStatus.PENDING,
            ~exists().where(ArchiveImage.job_id == Job.id),
        )
        .order_by(Job.completed_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(query)).all()


async def add_images(session: AsyncSession, images: Sequence[ArchiveImage]) -> None:
    """Insert a job's image rows."""
    session.add_all(images)
    await session.flush()


async def lock_job(session: AsyncSession, job_id: uuid.UUID) -> None:
    """Lock the job's row until the transaction ends (serialises its images' last steps)."""
    await session.execute(select(Job.id).where(Job.id == job_id).with_for_update())


async def set_archive_status(
    session: AsyncSession, job_id: uuid.UUID, from_status: str, to_status: str
) -> bool:
    """Move the job's archive_status from `from_status` to `to_status`; True if it moved."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.archive_status == from_status)
        .values(archive_status=to_status)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def claim_due_images(
    session: AsyncSession, owner: str, now: datetime, lease_until: datetime, limit: int
) -> Sequence[ArchiveImage]:
    """Take up to `limit` pending images whose next attempt is due and that nobody holds."""
    due = (
        select(ArchiveImage.job_id, ArchiveImage.index)
        .where(
            ArchiveImage.status == ImageStatus.PENDING,
            ArchiveImage.next_attempt_at <= now,
            or_(ArchiveImage.claim_expires_at.is_(None), ArchiveImage.claim_expires_at < now),
        )
        .order_by(ArchiveImage.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    keys = (await session.execute(due)).all()
    claimed = []
    for job_id, index in keys:
        await session.execute(
            update(ArchiveImage)
            .where(ArchiveImage.job_id == job_id, ArchiveImage.index == index)
            .values(claimed_by=owner, claim_expires_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        image = await session.get(ArchiveImage, (job_id, index), populate_existing=True)
        assert image is not None
        claimed.append(image)
    return claimed


async def update_claimed_image(
    session: AsyncSession, image: ArchiveImage, owner: str, values: dict[str, Any]
) -> bool:
    """Update a pending image that `owner` still holds, and let go of it; True if it did."""
    result = await session.execute(
        update(ArchiveImage)
        .where(
            ArchiveImage.job_id == image.job_id,
            ArchiveImage.index == image.index,
            ArchiveImage.status == ImageStatus.PENDING,
            ArchiveImage.claimed_by == owner,
        )
        .values(**values, claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def release_all(session: AsyncSession, owner: str) -> int:
    """Give up every image claim `owner` holds (at shutdown)."""
    result = await session.execute(
        update(ArchiveImage)
        .where(ArchiveImage.claimed_by == owner)
        .values(claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount


async def image_statuses(session: AsyncSession, job_id: uuid.UUID) -> list[str]:
    """The status of each of the job's images."""
    rows = await session.scalars(select(ArchiveImage.status).where(ArchiveImage.job_id == job_id))
    return list(rows)


async def get_image(session: AsyncSession, job_id: uuid.UUID, index: int) -> ArchiveImage | None:
    """One image row."""
    return await session.get(ArchiveImage, (job_id, index), populate_existing=True)


async def archived_images(
    session: AsyncSession, job_ids: Sequence[uuid.UUID]
) -> Sequence[ArchiveImage]:
    """The archived (stored, not expired) images of these jobs, by job and index."""
    if not job_ids:
        return []
    rows = await session.scalars(
        select(ArchiveImage)
        .where(ArchiveImage.job_id.in_(job_ids), ArchiveImage.status == ImageStatus.ARCHIVED)
        .order_by(ArchiveImage.job_id, ArchiveImage.index)
    )
    return rows.all()


def archived_images_of_job() -> Select[Any]:
    """The archived images of the job `job_id`, by index (for the hot paths)."""
    return (
        select(ArchiveImage.__table__)
        .where(
            ArchiveImage.job_id == bindparam("job_id"),
            ArchiveImage.status == ImageStatus.ARCHIVED,
        )
        .order_by(ArchiveImage.index)
    )


def archived_images_of_jobs() -> Select[Any]:
    """The archived images of the jobs `job_ids` (PostgreSQL, for the hot paths), by job and
    index."""
    return (
        select(ArchiveImage.__table__)
        .where(
            ArchiveImage.job_id == any_(bindparam("job_ids", type_=ARRAY(Uuid))),
            ArchiveImage.status == ImageStatus.ARCHIVED,
        )
        .order_by(ArchiveImage.job_id, ArchiveImage.index)
    )


async def stored_before(
    session: AsyncSession, cutoff: datetime, limit: int
) -> Sequence[ArchiveImage]:
    """Archived images stored before `cutoff`, oldest first."""
    rows = await session.scalars(
        select(ArchiveImage)
        .where(ArchiveImage.status == ImageStatus.ARCHIVED, ArchiveImage.stored_at < cutoff)
        .order_by(ArchiveImage.stored_at)
        .limit(limit)
    )
    return rows.all()


async def mark_expired(session: AsyncSession, image: ArchiveImage, now: datetime) -> bool:
    """Mark an archived image `expired` (its objects are deleted); True if it was archived."""
    result = await session.execute(
        update(ArchiveImage)
        .where(
            ArchiveImage.job_id == image.job_id,
            ArchiveImage.index == image.index,
            ArchiveImage.status == ImageStatus.ARCHIVED,
        )
        .values(status=ImageStatus.EXPIRED, expired_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def mark_for_backfill(session: AsyncSession, completed_after: datetime) -> int:
    """Set archive_status `pending` on completed jobs with no archive whose links still work."""
    result = await session.execute(
        update(Job)
        .where(
            Job.status == JobStatus.COMPLETED,
            or_(Job.archive_status.is_(None), Job.archive_status == ArchiveStatus.OFF),
            Job.completed_at > completed_after,
            ~exists().where(ArchiveImage.job_id == Job.id),
        )
        .values(archive_status=ArchiveStatus.PENDING)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount


async def stored_keys(session: AsyncSession, job_ids: Sequence[uuid.UUID]) -> list[str]:
    """Every stored object (images and thumbnails) of these jobs, for a purge of the jobs."""
    rows = await session.execute(
        select(ArchiveImage.object_key, ArchiveImage.thumbnail_key).where(
            ArchiveImage.job_id.in_(job_ids), ArchiveImage.object_key.is_not(None)
        )
    )
    return [key for row in rows.all() for key in row if key]
