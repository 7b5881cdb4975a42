"""Claiming due jobs for background work, with leases that lapse if their holder dies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.jobs.models import Job, JobStatus, SubmitState
from app.worker.shutdown import release_at_shutdown


async def claim_due(
    session: AsyncSession, owner: str, now: datetime, lease_until: datetime, limit: int
) -> Sequence[Job]:
    """Take up to `limit` jobs whose next attempt is due and that nobody holds.

    On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets replicas claim side by side without waiting on,
    or taking, each other's rows; SQLite (one process) ignores it.
    """
    due = (
        select(Job.id)
        .where(
            Job.next_attempt_at <= now,
            or_(Job.claim_expires_at.is_(None), Job.claim_expires_at < now),
        )
        .order_by(Job.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = (await session.scalars(due)).all()
    if not ids:
        return []
    await session.execute(
        update(Job)
        .where(Job.id.in_(ids))
        .values(claimed_by=owner, claim_expires_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    jobs = await session.scalars(
        select(Job).where(Job.id.in_(ids)).execution_options(populate_existing=True)
    )
    return jobs.all()


async def release_all(session: AsyncSession, owner: str) -> int:
    """Give up every claim `owner` holds (at shutdown); a send in flight becomes `unknown`."""
    await session.execute(
        update(Job)
        .where(
            Job.claimed_by == owner,
            Job.status == JobStatus.QUEUED,
            Job.submit_state == SubmitState.SENDING,
        )
        .values(submit_state=SubmitState.UNKNOWN)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(Job)
        .where(Job.claimed_by == owner)
        .values(claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount


async def release_claims(sessions: async_sessionmaker[AsyncSession], owner: str) -> int:
    """`release_all` in a transaction of its own; logs instead of raising (used at shutdown)."""
    return await release_at_shutdown(sessions, release_all, owner, "release_claims_failed")
