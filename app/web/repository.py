"""The console's SQL: filtered keyset pages of jobs, and credits spent per day and caller.

Credits come from the spend ledger (app/spend): each job's entry counts for its cost once
settled and its price until then, on the day the job was created, as the limits count them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.jobs.models import FINAL_STATUSES, Job
from app.spend.models import SpendEntry

Keyset = tuple[datetime, uuid.UUID]


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a page lists; `caller` None means every caller's (admins only)."""

    caller: str | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    prompt: str | None = None


def _filtered(filters: JobFilter) -> Select[Job]:
    query = select(Job)
    if filters.caller is not None:
        query = query.where(Job.caller == filters.caller)
    if filters.status is not None:
        query = query.where(Job.status == filters.status)
    if filters.created_from is not None:
        query = query.where(Job.created_at >= filters.created_from)
    if filters.created_before is not None:
        query = query.where(Job.created_at < filters.created_before)
    if filters.prompt:
        pattern = "%" + _escape_like(filters.prompt) + "%"
        query = query.where(Job.prompt.ilike(pattern, escape="\\"))
    return query


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_jobs(
    session: AsyncSession,
    filters: JobFilter,
    *,
    limit: int,
    older_than: Keyset | None = None,
    newer_than: Keyset | None = None,
) -> Sequence[Job]:
    """Up to `limit` matching jobs, newest first, strictly older than `older_than` and strictly
    newer than `newer_than` (keyset positions)."""
    query = _filtered(filters)
    if older_than is not None:
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(*older_than))
    if newer_than is not None:
        query = query.where(tuple_(Job.created_at, Job.id) > tuple_(*newer_than))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return (await session.scalars(query)).all()


async def job_callers(session: AsyncSession) -> list[str]:
    """Every caller that owns a job."""
    return list((await session.scalars(select(Job.caller).distinct().order_by(Job.caller))).all())


def _utc_day(session: AsyncSession, column: InstrumentedAttribute[datetime]) -> ColumnElement[date]:
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite keeps UTC text: its first ten characters


def _spent_since(since: datetime, caller: str | None) -> list[ColumnElement[bool]]:
    conditions = [SpendEntry.created_at >= since]
    if caller is not None:
        conditions.append(SpendEntry.caller == caller)
    return conditions


# What an entry counts for now: its cost once settled, its price until then (SpendEntry.credits).
_CREDITS = func.coalesce(SpendEntry.charged, SpendEntry.price)


async def credits_by_day(
    session: AsyncSession, since: datetime, caller: str | None
) -> list[tuple[date, str, float]]:
    """Credits per UTC day and caller for jobs created since `since` (one caller's, or all)."""
    day = _utc_day(session, SpendEntry.created_at)
    rows = await session.execute(
        select(day, SpendEntry.caller, func.sum(_CREDITS))
        .where(*_spent_since(since, caller))
        .group_by(day, SpendEntry.caller)
        .order_by(day, SpendEntry.caller)
    )
    return [
        (value if isinstance(value, date) else date.fromisoformat(str(value)), name, float(total))
        for value, name, total in rows.all()
    ]


async def credits_by_caller(
    session: AsyncSession, since: datetime, caller: str | None
) -> dict[str, float]:
    """Credits per caller for jobs created since `since`."""
    rows = await session.execute(
        select(SpendEntry.caller, func.sum(_CREDITS))
        .where(*_spent_since(since, caller))
        .group_by(SpendEntry.caller)
    )
    return {name: float(total) for name, total in rows.all()}


async def jobs_in_flight_by_caller(session: AsyncSession, caller: str | None) -> dict[str, int]:
    """Unfinished jobs per caller."""
    query = select(Job.caller, func.count()).where(Job.status.not_in(FINAL_STATUSES))
    if caller is not None:
        query = query.where(Job.caller == caller)
    rows = await session.execute(query.group_by(Job.caller))
    return {name: count for name, count in rows.all()}


async def jobs_created_by_caller(
    session: AsyncSession, since: datetime, caller: str | None
) -> dict[str, int]:
    """Jobs created since `since`, per caller."""
    query = select(Job.caller, func.count()).where(Job.created_at >= since)
    if caller is not None:
        query = query.where(Job.caller == caller)
    rows = await session.execute(query.group_by(Job.caller))
    return {name: count for name, count in rows.all()}
