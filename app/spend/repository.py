"""The SQL for the ledger, the limit counters and the blocks, and nothing else."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CursorResult,
    Insert,
    Update,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job
from app.spend.models import EntryState, SpendBlock, SpendCounter, SpendEntry

# Floating-point slack when comparing a sum of credits with a limit.
EPSILON = 1e-6


async def add_entry(session: AsyncSession, entry: SpendEntry) -> None:
    """Insert a job's ledger entry."""
    session.add(entry)
    await session.flush()


def new_entry(block: str) -> Insert:
    """A job's ledger entry, reserved (`job_id`, `caller`, `model`, `n`, `price`, `created_at`),
    unless the block named `block` began after `blocked_after` (for the hot paths); returns the
    job id if it was written."""
    blocked = exists().where(
        SpendBlock.name == block,
        SpendBlock.since_at > bindparam("blocked_after", type_=SpendBlock.since_at.type),
    )
    e = SpendEntry
    columns = (e.job_id, e.caller, e.model, e.n, e.price, e.created_at)
    values = [bindparam(c.key, type_=c.type) for c in columns]
    row = select(*values, literal(EntryState.RESERVED.value, SpendEntry.state.type)).where(~blocked)
    names = [c.key for c in columns] + ["state"]
    return insert(e).from_select(names, row).returning(e.job_id)


async def get_entry(session: AsyncSession, job_id: uuid.UUID) -> SpendEntry | None:
    """A job's ledger entry, fresh from the database."""
    return await session.get(SpendEntry, job_id, populate_existing=True)


async def job_with_entry(
    session: AsyncSession, job_id: uuid.UUID
) -> tuple[Job | None, SpendEntry | None]:
    """A job and its ledger entry (None for a job created before the ledger), fresh from the
    database, in one read."""
    result = await session.execute(
        _JOB_WITH_ENTRY, {"job_id": job_id}, execution_options={"populate_existing": True}
    )
    row = result.first()
    return (row[0], row[1]) if row is not None else (None, None)


_JOB_WITH_ENTRY = (
    select(Job, SpendEntry)
    .outerjoin(SpendEntry, SpendEntry.job_id == Job.id)
    .where(Job.id == bindparam("job_id"))
)


async def update_entry(session: AsyncSession, job_id: uuid.UUID, **values: object) -> None:
    """Set columns of a job's ledger entry."""
    await session.execute(
        update(SpendEntry)
        .where(SpendEntry.job_id == job_id)
        .values(values)
        .execution_options(synchronize_session=False)
    )


def settle_entry() -> Update:
    """A job's entry settled (`job_id`, `charged`, `state`, `settled_at`), keeping what EvoLink
    reserved or else taking `evolink_reserved` (for the hot paths, which bind every column)."""
    e = SpendEntry
    return (
        update(e)
        .where(e.job_id == bindparam("job_id", type_=e.job_id.type))
        .values(
            charged=bindparam("charged", type_=e.charged.type),
            state=bindparam("state", type_=e.state.type),
            settled_at=bindparam("settled_at", type_=e.settled_at.type),
            evolink_reserved=func.coalesce(
                e.evolink_reserved, bindparam("evolink_reserved", type_=e.evolink_reserved.type)
            ),
        )
    )


@dataclass(frozen=True)
class WindowKeys:
    """The keys of the current UTC minute, day and month."""

    minute: str
    day: str
    month: str


@dataclass(frozen=True)
class Bounds:
    """The limits one scope's row is checked against; None: no limit."""

    minute_jobs: int | None = None
    in_flight: int | None = None
    day_credits: float | None = None
    month_credits: float | None = None


@dataclass(frozen=True)
class Totals:
    """What a scope has used in the current windows."""

    minute_jobs: int = 0
    in_flight: int = 0
    day_credits: float = 0.0
    month_credits: float = 0.0


def _current() -> tuple[Any, Any, Any]:
    """A row's totals in the windows the `current_minute`, `current_day` and `current_month`
    parameters name (0 where the row counts an older window)."""
    c = SpendCounter
    return (
        case((c.minute_key == _MINUTE_KEY, c.minute_jobs), else_=0),
        case((c.day_key == _DAY_KEY, c.day_credits), else_=0.0),
        case((c.month_key == _MONTH_KEY, c.month_credits), else_=0.0),
    )


def _window_params(keys: WindowKeys) -> dict[str, str]:
    return {"current_minute": keys.minute, "current_day": keys.day, "current_month": keys.month}


_MINUTE_KEY = bindparam("current_minute", type_=SpendCounter.minute_key.type)
_DAY_KEY = bindparam("current_day", type_=SpendCounter.day_key.type)
_MONTH_KEY = bindparam("current_month", type_=SpendCounter.month_key.type)


async def add_job(
    session: AsyncSession,
    scope: str,
    keys: WindowKeys,
    credits: float,
    bounds: Bounds,
    at: datetime,
) -> bool:
    """Count one more job of `credits` in one conditional UPDATE of the scope's row, unless that
    would pass one of `bounds`; True if it did.

    Totals of windows that have ended start again from zero in the same statement. On
    PostgreSQL a concurrent transaction waits for the row, then re-checks the condition against
    the committed totals, so no two creates can both take the last room.
    """
    if await _add(session, scope, keys, credits, bounds, at):
        return True
    # No row yet, or a bound refused. Create the row unless it exists (a concurrent first create
    # may be making it: the insert waits for that one's commit), then ask once more.
    await _insert_counter(session, scope, at)
    return await _add(session, scope, keys, credits, bounds, at)


async def _add(
    session: AsyncSession,
    scope: str,
    keys: WindowKeys,
    credits: float,
    bounds: Bounds,
    at: datetime,
) -> bool:
    statement, params = counting(scope, keys, credits, bounds, at)
    result = await session.execute(statement, params)
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def counting(
    scope: str, keys: WindowKeys, credits: float, bounds: Bounds, at: datetime
) -> tuple[Update, dict[str, Any]]:
    """The conditional UPDATE that counts one more job in `scope` (see `add_job`), and its
    parameters; it changes no row if the scope has none or a bound refuses."""
    statement = add_statement(
        bounds.minute_jobs is not None,
        bounds.in_flight is not None,
        bounds.day_credits is not None,
        bounds.month_credits is not None,
    )
    params: dict[str, Any] = {
        "scope_name": scope,
        "credits": credits,
        "at": at,
        **_window_params(keys),
    }
    if bounds.minute_jobs is not None:
        params["minute_bound"] = bounds.minute_jobs
    if bounds.in_flight is not None:
        params["in_flight_bound"] = bounds.in_flight
    if bounds.day_credits is not None:
        params["day_bound"] = bounds.day_credits + EPSILON
    if bounds.month_credits is not None:
        params["month_bound"] = bounds.month_credits + EPSILON
    return statement, params


# Built once per shape and reused with bound parameters: building the counter UPDATEs per call
# was over a quarter of a create's CPU time.
@functools.lru_cache(maxsize=16)
def add_statement(minute: bool, in_flight: bool, day: bool, month: bool) -> Update:
    c = SpendCounter
    minute_jobs, day_credits, month_credits = _current()
    credits = bindparam("credits", type_=c.day_credits.type)
    conditions = [c.scope == bindparam("scope_name", type_=c.scope.type)]
    if minute:
        conditions.append(minute_jobs + 1 <= bindparam("minute_bound", type_=c.minute_jobs.type))
    if in_flight:
        conditions.append(c.in_flight + 1 <= bindparam("in_flight_bound", type_=c.in_flight.type))
    if day:
        conditions.append(day_credits + credits <= bindparam("day_bound", type_=c.day_credits.type))
    if month:
        bound = bindparam("month_bound", type_=c.month_credits.type)
        conditions.append(month_credits + credits <= bound)
    return (
        update(c)
        .where(*conditions)
        .values(
            minute_key=_MINUTE_KEY,
            minute_jobs=minute_jobs + 1,
            day_key=_DAY_KEY,
            day_credits=day_credits + credits,
            month_key=_MONTH_KEY,
            month_credits=month_credits + credits,
            in_flight=c.in_flight + 1,
            updated_at=bindparam("at", type_=c.updated_at.type),
        )
        .execution_options(synchronize_session=False)
    )


async def _insert_counter(session: AsyncSession, scope: str, at: datetime) -> None:
    """Create a scope's row at zero unless it exists."""
    values = {
        "scope": scope,
        "minute_key": "",
        "minute_jobs": 0,
        "day_key": "",
        "day_credits": 0.0,
        "month_key": "",
        "month_credits": 0.0,
        "in_flight": 0,
        "updated_at": at,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(SpendCounter).values(values).on_conflict_do_nothing())


async def settle(
    session: AsyncSession,
    scope: str,
    *,
    day_key: str,
    month_key: str,
    delta: float,
    release: bool,
    at: datetime,
) -> None:
    """Correct a scope's credits of the day and month a job was created in by `delta` (where the
    row still counts those windows; never below 0), and release its place in flight."""
    if not (delta or release):
        return
    params: dict[str, Any] = {"scope_name": scope, "at": at}
    if delta:
        params.update(current_day=day_key, current_month=month_key, delta=delta)
    await session.execute(settle_statement(bool(delta), release), params)


@functools.lru_cache(maxsize=4)
def settle_statement(correct: bool, release: bool) -> Update:
    """`settle` for one scope (`scope_name`, `at`; with `correct`: `delta`, `current_day` and
    `current_month`)."""
    c = SpendCounter
    return (
        update(c)
        .where(c.scope == bindparam("scope_name", type_=c.scope.type))
        .values(_settled_values(correct, release))
        .execution_options(synchronize_session=False)
    )


@functools.lru_cache(maxsize=4)
def settlement_statement(correct: bool, release: bool) -> Update:
    """A job's whole settlement as one statement (PostgreSQL, for the hot paths): its entry as
    `settle_entry` (`job_id`...), and the counters of the scopes `scopes` as `settle_statement`
    for each, locked in the order `scopes` names them (caller, then global: the order `reserve`
    locks them in, so that no two transactions wait for each other in a cycle)."""
    c = SpendCounter
    scopes = bindparam("scopes", type_=ARRAY(c.scope.type))
    locked = (
        select(c.scope)
        .where(c.scope == any_(scopes))
        .order_by(func.array_position(scopes, c.scope))
        .with_for_update()
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )
    return (
        update(c)
        .where(c.scope == locked.c.scope)
        .values(_settled_values(correct, release))
        .add_cte(settle_entry().cte("entry"))
    )


def _settled_values(correct: bool, release: bool) -> dict[str, Any]:
    c = SpendCounter
    delta = bindparam("delta", type_=c.day_credits.type)

    def corrected(key_column: Any, total: Any, key: Any) -> Any:
        fixed = total + delta
        return case((key_column == key, case((fixed < 0, 0.0), else_=fixed)), else_=total)

    values: dict[str, Any] = {"updated_at": bindparam("at", type_=c.updated_at.type)}
    if correct:
        values["day_credits"] = corrected(c.day_key, c.day_credits, _DAY_KEY)
        values["month_credits"] = corrected(c.month_key, c.month_credits, _MONTH_KEY)
    if release:
        values["in_flight"] = case((c.in_flight > 0, c.in_flight - 1), else_=0)
    return values


_minute, _day, _month = _current()
_TOTALS = select(SpendCounter.scope, _minute, SpendCounter.in_flight, _day, _month).where(
    SpendCounter.scope.in_(bindparam("scopes", expanding=True))
)


async def totals(
    session: AsyncSession, scopes: Sequence[str], keys: WindowKeys
) -> dict[str, Totals]:
    """Each scope's totals in the windows `keys` name, as committed now, in one read that takes
    no lock (zeros for a scope without a row)."""
    rows = await session.execute(_TOTALS, {"scopes": list(scopes), **_window_params(keys)})
    found = {row[0]: Totals(int(row[1]), int(row[2]), float(row[3]), float(row[4])) for row in rows}
    return {scope: found.get(scope, Totals()) for scope in scopes}


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
