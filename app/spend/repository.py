"""The SQL for the ledger, the limit counters and the blocks, and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CursorResult, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job
from app.spend.models import EntryState, SpendBlock, SpendCounter, SpendEntry

# Floating-point slack when comparing a sum of credits with a limit.
EPSILON = 1e-6


async def add_entry(session: AsyncSession, entry: SpendEntry) -> None:
    """Insert a job's ledger entry."""
    session.add(entry)
    await session.flush()


async def get_entry(session: AsyncSession, job_id: uuid.UUID) -> SpendEntry | None:
    """A job's ledger entry, fresh from the database."""
    return await session.get(SpendEntry, job_id, populate_existing=True)


async def update_entry(session: AsyncSession, job_id: uuid.UUID, **values: object) -> None:
    """Set columns of a job's ledger entry."""
    await session.execute(
        update(SpendEntry)
        .where(SpendEntry.job_id == job_id)
        .values(values)
        .execution_options(synchronize_session=False)
    )


async def add_within_limit(
    session: AsyncSession,
    scope: str,
    kind: str,
    window_key: str,
    amount: float,
    limit: float | None,
    at: datetime,
) -> bool:
    """Add `amount` to a counter in one conditional UPDATE, unless that would pass `limit`.

    A counter whose window is not `window_key` starts again from zero. On PostgreSQL, a
    concurrent transaction waits for the row and then re-checks the condition against the
    committed total, so no two creates can both take the last room. True if it added.
    """
    if await _add(session, scope, kind, window_key, amount, limit, at):
        return True
    # No row yet, or the limit refused. Create the row unless it exists (a concurrent first
    # create may be making it: the insert waits for that one's commit), then ask once more.
    await _insert_counter(session, scope, kind, window_key, at)
    return await _add(session, scope, kind, window_key, amount, limit, at)


async def _add(
    session: AsyncSession,
    scope: str,
    kind: str,
    window_key: str,
    amount: float,
    limit: float | None,
    at: datetime,
) -> bool:
    current = case((SpendCounter.window_key == window_key, SpendCounter.used), else_=0.0)
    statement = update(SpendCounter).where(SpendCounter.scope == scope, SpendCounter.kind == kind)
    if limit is not None:
        statement = statement.where(current + amount <= limit + EPSILON)
    result = await session.execute(
        statement.values(
            window_key=window_key, used=current + amount, updated_at=at
        ).execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def _insert_counter(
    session: AsyncSession, scope: str, kind: str, window_key: str, at: datetime
) -> None:
    """Create a counter at zero unless it exists."""
    values = {"scope": scope, "kind": kind, "window_key": window_key, "used": 0.0, "updated_at": at}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(SpendCounter).values(values).on_conflict_do_nothing())


async def adjust(
    session: AsyncSession, scope: str, kind: str, window_key: str, delta: float, at: datetime
) -> None:
    """Add `delta` (either sign) to a counter if it still counts `window_key`; never below 0."""
    total = SpendCounter.used + delta
    await session.execute(
        update(SpendCounter)
        .where(
            SpendCounter.scope == scope,
            SpendCounter.kind == kind,
            SpendCounter.window_key == window_key,
        )
        .values(used=case((total < 0, 0.0), else_=total), updated_at=at)
        .execution_options(synchronize_session=False)
    )


async def counter_used(session: AsyncSession, scope: str, kind: str, window_key: str) -> float:
    """What a counter holds for `window_key` (0 if it counts another window or does not exist)."""
    row = (
        await session.execute(
            select(SpendCounter.window_key, SpendCounter.used).where(
                SpendCounter.scope == scope, SpendCounter.kind == kind
            )
        )
    ).one_or_none()
    if row is None or row.window_key != window_key:
        return 0.0
    return float(row.used)


async def oldest_open_entry_at(session: AsyncSession, caller: str) -> datetime | None:
    """When the caller's oldest job still in flight (price reserved, not settled) was created."""
    return await session.scalar(
        select(func.min(SpendEntry.created_at)).where(
            SpendEntry.caller == caller, SpendEntry.state == EntryState.RESERVED
        )
    )


@dataclass(frozen=True)
class StatusTotal:
    """Jobs and credits of one caller and status in a window."""

    caller: str
    status: str
    jobs: int
    credits: float
    reserved: float


async def totals_by_status(
    session: AsyncSession, caller: str | None, start: datetime, end: datetime
) -> Sequence[StatusTotal]:
    """The ledger's jobs and credits created in [start, end), by caller and job status.

    `credits` counts a settled entry's cost and an open entry's price; `reserved` the latter.
    """
    open_price = case((SpendEntry.state == EntryState.RESERVED, SpendEntry.price), else_=0.0)
    query = (
        select(
            SpendEntry.caller,
            Job.status,
            func.count(),
            func.coalesce(func.sum(func.coalesce(SpendEntry.charged, SpendEntry.price)), 0.0),
            func.coalesce(func.sum(open_price), 0.0),
        )
        .join(Job, Job.id == SpendEntry.job_id)
        .where(SpendEntry.created_at >= start, SpendEntry.created_at < end)
        .group_by(SpendEntry.caller, Job.status)
    )
    if caller is not None:
        query = query.where(SpendEntry.caller == caller)
    rows = (await session.execute(query)).all()
    return [StatusTotal(row[0], row[1], int(row[2]), float(row[3]), float(row[4])) for row in rows]


async def get_block(session: AsyncSession, name: str) -> SpendBlock | None:
    """A block by name, fresh."""
    return await session.get(SpendBlock, name, populate_existing=True)


async def set_block(session: AsyncSession, name: str, since: datetime, reason: str) -> None:
    """Start (or restart) a block from `since`."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(SpendBlock).values(name=name, since_at=since, reason=reason)
    statement = statement.on_conflict_do_update(
        index_elements=[SpendBlock.name], set_={"since_at": since, "reason": reason}
    )
    await session.execute(statement)
