"""The SQL for notifications and their attempts, and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job
from app.notifications.models import Notification, NotificationAttempt, NotificationStatus


async def notify_url_of(session: AsyncSession, job_id: uuid.UUID) -> str | None:
    """The job's notify_url (None when it has none, or there is no such job)."""
    url: str | None = await session.scalar(select(Job.notify_url).where(Job.id == job_id))
    return url


async def add_notification(session: AsyncSession, notification: Notification) -> None:
    """Insert one event into the outbox."""
    session.add(notification)
    await session.flush()


async def get_notification(
    session: AsyncSession, job_id: uuid.UUID, event_id: str
) -> Notification | None:
    """One of the job's notifications."""
    found = await session.get(Notification, event_id, populate_existing=True)
    return found if found is not None and found.job_id == job_id else None


async def list_for_job(session: AsyncSession, job_id: uuid.UUID) -> Sequence[Notification]:
    """The job's notifications, oldest first."""
    rows = await session.scalars(
        select(Notification)
        .where(Notification.job_id == job_id)
        .order_by(Notification.created_at, Notification.event_id)
        .execution_options(populate_existing=True)
    )
    return rows.all()


async def attempts_for(
    session: AsyncSession, event_ids: Sequence[str]
) -> Sequence[NotificationAttempt]:
    """Every attempt at these events, oldest first."""
    if not event_ids:
        return []
    rows = await session.scalars(
        select(NotificationAttempt)
        .where(NotificationAttempt.event_id.in_(event_ids))
        .order_by(NotificationAttempt.id)
    )
    return rows.all()


async def claim_due(
    session: AsyncSession, owner: str, now: datetime, lease_until: datetime, limit: int
) -> Sequence[Notification]:
    """Take up to `limit` pending notifications that are due and that nobody holds."""
    due = (
        select(Notification.event_id)
        .where(
            Notification.status == NotificationStatus.PENDING,
            Notification.next_attempt_at <= now,
            or_(Notification.claim_expires_at.is_(None), Notification.claim_expires_at < now),
        )
        .order_by(Notification.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = (await session.scalars(due)).all()
    if not ids:
        return []
    await session.execute(
        update(Notification)
        .where(Notification.event_id.in_(ids))
        .values(claimed_by=owner, claim_expires_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    rows = await session.scalars(
        select(Notification)
        .where(Notification.event_id.in_(ids))
        .execution_options(populate_existing=True)
    )
    return rows.all()


async def update_claimed(
    session: AsyncSession, event_id: str, owner: str, values: dict[str, Any]
) -> bool:
    """Update a pending notification that `owner` still holds, and let go of it; True if so."""
    result = await session.execute(
        update(Notification)
        .where(
            Notification.event_id == event_id,
            Notification.status == NotificationStatus.PENDING,
            Notification.claimed_by == owner,
        )
        .values(**values, claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def restart_unless_claimed(session: AsyncSession, event_id: str, now: datetime) -> bool:
    """Make a notification pending and due now, its schedule started over, unless a live claim
    holds it (a delivery is in flight); True if it was restarted."""
    result = await session.execute(
        update(Notification)
        .where(
            Notification.event_id == event_id,
            or_(Notification.claim_expires_at.is_(None), Notification.claim_expires_at < now),
        )
        .values(
            status=NotificationStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            claimed_by=None,
            claim_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def add_attempt(session: AsyncSession, attempt: NotificationAttempt) -> None:
    """Record one delivery attempt."""
    session.add(attempt)
    await session.flush()


async def release_all(session: AsyncSession, owner: str) -> int:
    """Give up every notification claim `owner` holds (at shutdown)."""
    result = await session.execute(
        update(Notification)
        .where(Notification.claimed_by == owner)
        .values(claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount
