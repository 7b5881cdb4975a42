"""The worker's claims, hot: due jobs claimed, a waiting job marked as being sent, a claim
released, each in one prepared statement over the hot pool.

Anything out of the common case (EvoLink's out-of-credits back-off in force, a job no longer
waiting, a database error) is left to the worker's session path, which decides it as always.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from app.hot.database import HotDatabase
from app.hot.statements import Prepared
from app.jobs import repository as jobs_repository
from app.jobs.models import Job
from app.spend.service import OUT_OF_CREDITS

RELEASE = Prepared.of(jobs_repository.claim_release())
DUE = Prepared.of(jobs_repository.due_claim())
_ATTRIBUTES = tuple((a.key, a.columns[0].name) for a in Job.__mapper__.column_attrs)


async def claim_due(
    database: HotDatabase, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[Job]:
    """`worker.claims.claim_due`, over the hot pool."""
    args = DUE.args(now=now, limit=limit, owner=owner, lease_until=lease_until)
    async with database.connection() as connection:
        rows = await connection.fetch(DUE.sql, *args)
    return [_job(row) for row in rows]


async def claim_for_sending(
    database: HotDatabase,
    job_id: uuid.UUID,
    owner: str,
    values: dict[str, Any],
    backoff_seconds: float,
    now: datetime,
) -> Job | None:
    """The waiting job `owner` holds, marked as being sent with the claim's `values`
    (`Submitter.claim_values`), unless EvoLink's out-of-credits back-off is in force `now`;
    None if it was not."""
    statement = _sending_claim(tuple(sorted(values)))
    args = statement.args(
        **{f"value_{name}": _plain(value) for name, value in values.items()},
        job_id=job_id,
        owner=owner,
        blocked_after=now - timedelta(seconds=backoff_seconds),
    )
    async with database.connection() as connection:
        row = await connection.fetchrow(statement.sql, *args)
    return None if row is None else _job(row)


async def release_claim(database: HotDatabase, job_id: uuid.UUID, owner: str) -> None:
    """`jobs.repository.release_claim`, over the hot pool."""
    async with database.connection() as connection:
        await connection.execute(RELEASE.sql, *RELEASE.args(job_id=job_id, owner=owner))


def _job(row: asyncpg.Record) -> Job:
    """The job a row holds, as an ORM object outside any session."""
    return Job(**{key: row[name] for key, name in _ATTRIBUTES})


@functools.lru_cache(maxsize=4)
def _sending_claim(value_names: tuple[str, ...]) -> Prepared:
    return Prepared.of(jobs_repository.sending_claim(value_names, OUT_OF_CREDITS))


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)
