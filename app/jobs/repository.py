"""The SQL for jobs, their events and their idempotency keys, and nothing else."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CursorResult,
    Insert,
    Integer,
    Select,
    String,
    Update,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.jobs.models import (
    FINAL_STATUSES,
    IdempotencyKey,
    Job,
    JobEvent,
    JobStatus,
    SubmitState,
)
from app.spend.models import SpendBlock, SpendEntry


async def add_job(session: AsyncSession, job: Job) -> Job:
    """Insert a new job and flush it so its defaults are set."""
    session.add(job)
    await session.flush()
    return job


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """A job by id, fresh from the database."""
    return await session.get(Job, job_id, populate_existing=True)


async def get_caller_job(session: AsyncSession, caller: str, job_id: uuid.UUID) -> Job | None:
    """A job by id, only if it belongs to `caller`."""
    job = await get_job(session, job_id)
    return job if job is not None and job.caller == caller else None


@functools.lru_cache(maxsize=8)
def new_job(value_names: tuple[str, ...]) -> Insert:
    """A new job's row from `value_<attribute>` for each of `value_names` and the columns'
    defaults for the rest (for the hot paths); returns the row."""
    values: dict[str, Any] = {}
    for attribute in Job.__mapper__.column_attrs:
        column = attribute.columns[0]
        if attribute.key in value_names:
            values[column.name] = _param(attribute.key)
        elif column.default is not None and column.default.is_scalar:
            values[column.name] = literal(column.default.arg, column.type)
    return insert(Job).values(values).returning(*Job.__table__.columns)


def caller_job_row() -> Select[Any]:
    """One job's columns by `job_id`, only if it belongs to `caller` (for the hot paths)."""
    return select(Job.__table__).where(
        Job.id == bindparam("job_id"), Job.caller == bindparam("caller")
    )


def first_deferral() -> Insert:
    """A callback's first deferral as one statement (PostgreSQL, for the hot paths); returns the
    job id if it did.

    Binds the task `task_id` to the job `job_id` and asks for a confirmation poll `now`, if the
    job is `unfinished` (or failed by one of our own `overturnable` verdicts), no other job has
    that task, no callback asked for a confirmation before, and the job keeps no body of a
    `capped` event yet (so that this one stays within the cap); then records the `deferred`
    event with the callback's `body`. Anything else is for `state_machine.defer_observation`.
    """
    now = bindparam("now", type_=Job.updated_at.type)
    task_id = bindparam("task_id", type_=Job.evolink_task_id.type)
    job_id = bindparam("job_id", type_=Job.id.type)
    deferred = (
        update(Job)
        .where(
            Job.id == job_id,
            or_(Job.evolink_task_id.is_(None), Job.evolink_task_id == task_id),
            ~exists().where(_OTHER_JOB.evolink_task_id == task_id, _OTHER_JOB.id != job_id),
            or_(
                Job.status == any_(_texts("unfinished")),
                and_(
                    Job.status == JobStatus.FAILED, Job.error_code == any_(_texts("overturnable"))
                ),
            ),
            Job.confirm_requested_at.is_(None),
            ~exists().where(
                JobEvent.job_id == job_id,
                JobEvent.outcome == any_(_texts("capped")),
                JobEvent.body.is_not(None),
            ),
        )
        .values(
            evolink_task_id=task_id,
            confirm_requested_at=now,
            confirm_task_id=task_id,
            next_attempt_at=now,
            callback_received_at=func.coalesce(Job.callback_received_at, now),
        )
        .returning(Job.id)
        .cte("deferred")
    )
    event = select(
        deferred.c.id,
        now,
        bindparam("source", type_=JobEvent.source.type),
        bindparam("task_status", type_=JobEvent.status.type),
        bindparam("outcome", type_=JobEvent.outcome.type),
        bindparam("detail", type_=JobEvent.detail.type),
        bindparam("body", type_=JobEvent.body.type),
    )
    columns = ["job_id", "received_at", "source", "status", "outcome", "detail", "body"]
    return insert(JobEvent).from_select(columns, event).returning(JobEvent.job_id)


def _texts(name: str) -> BindParameter[Any]:
    return bindparam(name, type_=ARRAY(String))


async def list_caller_jobs(
    session: AsyncSession,
    caller: str,
    *,
    status: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> Sequence[Job]:
    """Up to `limit` of a caller's jobs, newest first, strictly after the keyset `after`."""
    query = _newest_first(select(Job), caller, status, after).limit(limit)
    return (await session.scalars(query)).all()


def caller_jobs_rows(with_status: bool, with_after: bool) -> Select[Any]:
    """`list_caller_jobs` as columns (for the hot paths), with bound parameters `caller`,
    `status`, `after_created_at`, `after_id` and `page_size`."""
    after = (
        (
            bindparam("after_created_at", type_=Job.created_at.type),
            bindparam("after_id", type_=Job.id.type),
        )
        if with_after
        else None
    )
    status = bindparam("status", type_=Job.status.type) if with_status else None
    query = _newest_first(select(Job.__table__), bindparam("caller"), status, after)
    return query.limit(bindparam("page_size", type_=Integer))


def _newest_first(query: Select[Any], caller: Any, status: Any, after: Any) -> Select[Any]:
    query = query.where(Job.caller == caller)
    if status is not None:
        query = query.where(Job.status == status)
    if after is not None:
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(*after))
    return query.order_by(Job.created_at.desc(), Job.id.desc())


async def transition_job(
    session: AsyncSession,
    job_id: uuid.UUID,
    task_id: str,
    *,
    from_statuses: Sequence[str],
    same_status_below_progress: tuple[str, int] | None,
    overturn_local_verdicts: Sequence[str] = (),
    values: dict[str, Any],
    progress: int | None,
    callback_at: datetime | None = None,
) -> bool:
    """Apply `values` in one conditional UPDATE; True if this call made the transition.

    The row changes only if its task id is unset or equal to `task_id`, and its status is one of
    `from_statuses` (or equals the given status with a lower progress, or is `failed` with one
    of the `overturn_local_verdicts` codes). Concurrent callers race in the database, so exactly
    one of several identical updates wins. `callback_at` sets `callback_received_at` unless
    already set, in the same statement (a callback's first arrival).
    """
    statement = _transition_statement(
        tuple(sorted(values)),
        same_status_below_progress is not None,
        bool(overturn_local_verdicts),
        progress is not None,
        callback_at is not None,
    )
    params: dict[str, Any] = {
        "job_id": job_id,
        "task_id": task_id,
        "from_statuses": list(from_statuses),
        **{f"value_{name}": value for name, value in values.items()},
    }
    if same_status_below_progress is not None:
        params["same_status"], params["below_progress"] = same_status_below_progress
    if overturn_local_verdicts:
        params["overturn_codes"] = list(overturn_local_verdicts)
    if progress is not None:
        params["progress"] = progress
    if callback_at is not None:
        params["callback_at"] = callback_at
    result = await session.execute(statement, params)
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


# The hot paths' statements are built once per shape, with bound parameters, and reused: building
# them per call (the aliased EXISTS above all) was a quarter of a callback's CPU time.
_OTHER_JOB = aliased(Job, name="other_jobs")
_BOUND_ELSEWHERE = exists().where(
    _OTHER_JOB.evolink_task_id == bindparam("task_id"), _OTHER_JOB.id != bindparam("job_id")
)


def _param(name: str) -> BindParameter[Any]:
    """A bound parameter `value_<name>` typed like the job's column `name`."""
    column = Job.__mapper__.attrs[name].columns[0]
    return bindparam(f"value_{name}", type_=column.type)


@functools.lru_cache(maxsize=64)
def _transition_statement(
    value_names: tuple[str, ...],
    same_status: bool,
    overturn: bool,
    with_progress: bool,
    stamp_callback: bool,
    arrays: bool = False,
) -> Update:
    # `arrays` (PostgreSQL): the lists are bound as arrays, so the statement compiles once.
    statuses = _texts("from_statuses") if arrays else None
    allowed: ColumnElement[bool] = (
        Job.status == any_(statuses)
        if statuses is not None
        else Job.status.in_(bindparam("from_statuses", expanding=True))
    )
    if same_status:
        allowed = or_(
            allowed,
            and_(
                Job.status == bindparam("same_status"), Job.progress < bindparam("below_progress")
            ),
        )
    if overturn:
        overturned = (
            Job.error_code == any_(_texts("overturn_codes"))
            if arrays
            else Job.error_code.in_(bindparam("overturn_codes", expanding=True))
        )
        allowed = or_(allowed, and_(Job.status == "failed", overturned))
    values: dict[str, Any] = {name: _param(name) for name in value_names}
    if with_progress:
        progress = bindparam("progress", type_=Integer)
        values["progress"] = case((Job.progress > progress, Job.progress), else_=progress)
    if stamp_callback:
        at = bindparam("callback_at", type_=Job.callback_received_at.type)
        values["callback_received_at"] = func.coalesce(Job.callback_received_at, at)
    return (
        update(Job)
        .where(
            Job.id == bindparam("job_id"),
            or_(Job.evolink_task_id.is_(None), Job.evolink_task_id == bindparam("task_id")),
            ~_BOUND_ELSEWHERE,
            allowed,
        )
        .values(evolink_task_id=bindparam("task_id"), **values)
        .execution_options(synchronize_session=False)
    )


@functools.lru_cache(maxsize=16)
def final_change(value_names: tuple[str, ...], keep_notify_url: bool) -> Select[Any]:
    """A final observation applied as one statement (PostgreSQL, for the hot paths).

    The conditional UPDATE of `transition_job` for a final status (`value_<name>` for each of
    `value_names`, `progress`, `callback_at`, `from_statuses` and `overturn_codes` as arrays),
    the `applied` event (`now`, `source`, `task_status`, `body`), the change signal on `channel`,
    and the job's columns with its ledger entry's as they are before settlement, as one row;
    no row if the job did not change. With `keep_notify_url`, a job with a notify_url is left
    alone (its ending goes through the outbox, for `state_machine.apply_observation`).
    """
    transition = _transition_statement(value_names, False, True, True, True, arrays=True)
    if keep_notify_url:
        transition = transition.where(Job.notify_url.is_(None))
    changed = transition.returning(
        Job.id, Job.caller, Job.n, Job.results, Job.usage, Job.evolink_task_id, Job.submit_state
    ).cte("changed")
    event, signal = _applied_event(changed), _signal(changed)
    entry = SpendEntry.__table__
    return (
        select(
            changed,
            entry.c.caller.label("entry_caller"),
            entry.c.price,
            entry.c.evolink_reserved,
            entry.c.charged,
            entry.c.state,
            entry.c.created_at.label("entry_created_at"),
            event.c.job_id.label("recorded"),
        )
        .select_from(changed)
        .join(event, event.c.job_id == changed.c.id)
        .join(signal, true())
        .outerjoin(entry, entry.c.job_id == changed.c.id)
    )


@functools.lru_cache(maxsize=16)
def submit_answer(value_names: tuple[str, ...], reserved: bool) -> Select[Any]:
    """EvoLink's create answer for a job still being sent by us, as one statement (PostgreSQL,
    for the hot paths); the job's new row, or no row.

    The conditional UPDATE of `transition_job` for an unfinished status (`value_<name>` for each
    of `value_names`, `progress`, `from_statuses`, `same_status` and `below_progress`), taken
    only while the job is `sending` under `owner`'s claim and no callback came first (else the
    answer is for `Submitter.record`), which it releases; the `applied` event (`now`, `source`,
    `task_status`, `body`) and the change signal on `channel`; with `reserved`, the credits
    EvoLink reserved are written on the job's ledger entry.
    """
    transition = _transition_statement(value_names, True, False, True, False, arrays=True)
    changed = (
        transition.where(
            Job.submit_state == SubmitState.SENDING,
            Job.claimed_by == bindparam("owner", type_=Job.claimed_by.type),
            Job.callback_received_at.is_(None),
        )
        .values(claimed_by=null(), claim_expires_at=null())
        .returning(*Job.__table__.columns)
        .cte("changed")
    )
    event, signal = _applied_event(changed), _signal(changed)
    query = select(changed).join(event, event.c.job_id == changed.c.id).join(signal, true())
    if reserved:
        reserved_credits = bindparam("reserved", type_=SpendEntry.evolink_reserved.type)
        noted = (
            update(SpendEntry)
            .where(SpendEntry.job_id == changed.c.id, SpendEntry.evolink_reserved.is_(None))
            .values(evolink_reserved=reserved_credits)
        )
        query = query.add_cte(noted.cte("noted"))
    return query


def _applied_event(changed: Any) -> Any:
    """The event that records the change made in the CTE `changed` (`now`, `source`,
    `task_status`, `outcome`, `body`)."""
    now = bindparam("now", type_=JobEvent.received_at.type)
    return (
        insert(JobEvent)
        .from_select(
            ["job_id", "received_at", "source", "status", "outcome", "body"],
            select(
                changed.c.id,
                now,
                bindparam("source", type_=JobEvent.source.type),
                bindparam("task_status", type_=JobEvent.status.type),
                bindparam("outcome", type_=JobEvent.outcome.type),
                bindparam("body", type_=JobEvent.body.type),
            ),
        )
        .returning(JobEvent.job_id)
        .cte("event")
    )


def _signal(changed: Any) -> Any:
    """The change signal for the job changed in the CTE `changed`, on `channel`."""
    channel = bindparam("channel", type_=String)
    notified = func.pg_notify(channel, cast(changed.c.id, String)).label("signalled")
    return select(notified).cte("signal")


async def task_bound_elsewhere(session: AsyncSession, task_id: str, job_id: uuid.UUID) -> bool:
    """Whether another job is bound to EvoLink task `task_id`."""
    found = await session.scalar(select(_BOUND_ELSEWHERE), {"task_id": task_id, "job_id": job_id})
    return bool(found)


async def fill_missing_details(
    session: AsyncSession, job_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Set each of `values` only where the job has none yet (a late create answer's usage)."""
    for column, value in values.items():
        await session.execute(_fill_statement(column), {"job_id": job_id, f"value_{column}": value})


@functools.lru_cache(maxsize=16)
def _fill_statement(column: str) -> Update:
    attribute = getattr(Job, column)
    return (
        update(Job)
        .where(Job.id == bindparam("job_id"), attribute.is_(None))
        .values({column: _param(column)})
        .execution_options(synchronize_session=False)
    )


async def update_job_if(
    session: AsyncSession,
    job_id: uuid.UUID,
    statuses: Sequence[str],
    values: dict[str, Any],
    **column_equals: Any,
) -> bool:
    """Set columns of a job only while its status is one of `statuses` (and each of
    `column_equals` holds); True if it did."""
    conditions = [getattr(Job, name) == value for name, value in column_equals.items()]
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(statuses), *conditions)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def unbind_unconfirmed(
    session: AsyncSession,
    job_id: uuid.UUID,
    task_id: str,
    local_verdicts: Sequence[str],
    now: datetime,
) -> bool:
    """Unbind `task_id` from a job EvoLink never answered for (submission not done): a queued
    one (due again now) or one we failed ourselves (nothing due); True if it was unbound."""
    result = await session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.evolink_task_id == task_id,
            Job.submit_state != SubmitState.DONE,
            or_(
                Job.status == JobStatus.QUEUED,
                and_(Job.status == JobStatus.FAILED, Job.error_code.in_(local_verdicts)),
            ),
        )
        .values(
            evolink_task_id=None,
            next_attempt_at=case((Job.status == JobStatus.QUEUED, now), else_=None),
        )
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def add_event(session: AsyncSession, event: JobEvent) -> None:
    """Record one observation of a job's task."""
    session.add(event)
    await session.flush()


async def list_events(
    session: AsyncSession,
    job_id: uuid.UUID,
    *,
    limit: int | None = None,
    after_id: int | None = None,
) -> Sequence[JobEvent]:
    """A job's events, oldest first: up to `limit` of them, strictly after event `after_id`."""
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    if after_id is not None:
        query = query.where(JobEvent.id > after_id)
    query = query.order_by(JobEvent.id).limit(limit)
    return (await session.scalars(query)).all()


async def last_confirmation(
    session: AsyncSession, job_id: uuid.UUID
) -> tuple[datetime | None, str | None, str | None]:
    """When a callback last asked for a confirmation poll, of which task, and the job's task."""
    row = (
        await session.execute(
            select(Job.confirm_requested_at, Job.confirm_task_id, Job.evolink_task_id).where(
                Job.id == job_id
            )
        )
    ).first()
    return (row[0], row[1], row[2]) if row is not None else (None, None, None)


async def lock_job(session: AsyncSession, job_id: uuid.UUID) -> None:
    """Hold the job's row until the transaction ends (PostgreSQL; SQLite locks the database)."""
    await session.execute(select(Job.id).where(Job.id == job_id).with_for_update())


async def count_event_bodies(
    session: AsyncSession, job_id: uuid.UUID, outcomes: Sequence[str]
) -> int:
    """How many of the job's events with one of `outcomes` keep their body."""
    query = select(func.count()).where(
        JobEvent.job_id == job_id, JobEvent.outcome.in_(outcomes), JobEvent.body.is_not(None)
    )
    return await session.scalar(query) or 0


async def job_exists(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """Whether a job with this id exists."""
    return (await session.scalar(select(Job.id).where(Job.id == job_id))) is not None


async def release_claim(session: AsyncSession, job_id: uuid.UUID, owner: str) -> None:
    """Give up `owner`'s claim on a job (no-op if another process holds it now).

    A send still marked in flight under the claim was interrupted (cancelled, at shutdown): it
    may have reached EvoLink, so it becomes `unknown` and is never sent again.
    """
    await session.execute(_RELEASE_CLAIM, {"job_id": job_id, "owner": owner})


_RELEASE_CLAIM = (
    update(Job)
    .where(Job.id == bindparam("job_id"), Job.claimed_by == bindparam("owner"))
    .values(
        claimed_by=null(),
        claim_expires_at=null(),
        submit_state=case(
            (
                and_(Job.status == JobStatus.QUEUED, Job.submit_state == SubmitState.SENDING),
                SubmitState.UNKNOWN,
            ),
            else_=Job.submit_state,
        ),
    )
    .execution_options(synchronize_session=False)
)


def due_claim() -> Update:
    """`worker.claims.claim_due` as one statement (PostgreSQL, for the hot paths): up to
    `limit` jobs due `now` that nobody holds, taken for `owner` until `lease_until`, skipping
    rows other transactions hold; returns their rows."""
    now = bindparam("now", type_=Job.next_attempt_at.type)
    due = (
        select(Job.id)
        .where(
            Job.next_attempt_at <= now,
            or_(Job.claim_expires_at.is_(None), Job.claim_expires_at < now),
        )
        .order_by(Job.next_attempt_at)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")  # taken once, whatever the plan
    )
    return (
        update(Job)
        .where(Job.id == due.c.id)
        .values(
            claimed_by=bindparam("owner", type_=Job.claimed_by.type),
            claim_expires_at=bindparam("lease_until", type_=Job.claim_expires_at.type),
        )
        .returning(*Job.__table__.columns)
    )


def claim_release() -> Update:
    """`release_claim` as a statement (`job_id`, `owner`), for the hot paths."""
    return _RELEASE_CLAIM


@functools.lru_cache(maxsize=4)
def sending_claim(value_names: tuple[str, ...], block: str) -> Update:
    """A waiting job that `owner` holds, marked as being sent now (`value_<name>` for each of
    `value_names`), unless the block named `block` began after `blocked_after` (PostgreSQL,
    for the hot paths); returns the job's row if it was."""
    blocked = exists().where(
        SpendBlock.name == block,
        SpendBlock.since_at > bindparam("blocked_after", type_=SpendBlock.since_at.type),
    )
    return (
        update(Job)
        .where(
            Job.id == bindparam("job_id"),
            Job.status == JobStatus.QUEUED,
            Job.submit_state == SubmitState.WAITING,
            Job.claimed_by == bindparam("owner", type_=Job.claimed_by.type),
            ~blocked,
        )
        .values({name: _param(name) for name in value_names})
        .returning(*Job.__table__.columns)
    )


async def hurry_overtaken(session: AsyncSession, job_id: uuid.UUID, now: datetime) -> None:
    """Make an unfinished job whose callback overtook its create answer due `now` (to confirm
    that callback at once rather than after the estimate the answer scheduled)."""
    await session.execute(_HURRY_OVERTAKEN, {"job_id": job_id, "now": now})


_HURRY_OVERTAKEN = (
    update(Job)
    .where(
        Job.id == bindparam("job_id"),
        Job.status.in_(
            [str(s) for s in (JobStatus.QUEUED, JobStatus.PENDING, JobStatus.PROCESSING)]
        ),
        Job.callback_received_at.is_not(None),
    )
    .values(next_attempt_at=bindparam("now", type_=Job.next_attempt_at.type))
    .execution_options(synchronize_session=False)
)


@dataclass(frozen=True)
class JobStatistics:
    """Counts of jobs for the metrics endpoint."""

    by_status: dict[str, int]
    final_by_source: dict[tuple[str, bool], int]
    due: int
    waiting_to_submit: int


async def job_statistics(session: AsyncSession, now: datetime) -> JobStatistics:
    """Jobs by status, final jobs by source and callback, the due backlog and the submit queue."""
    by_status = await session.execute(select(Job.status, func.count()).group_by(Job.status))
    called_back = Job.callback_received_at.is_not(None)
    final = await session.execute(
        select(Job.final_source, called_back, func.count())
        .where(Job.status.in_(FINAL_STATUSES))
        .group_by(Job.final_source, called_back)
    )
    due = await session.scalar(
        select(func.count()).where(Job.next_attempt_at <= now, Job.status.not_in(FINAL_STATUSES))
    )
    waiting = await session.scalar(
        select(func.count()).where(
            Job.status == JobStatus.QUEUED, Job.submit_state == SubmitState.WAITING
        )
    )
    return JobStatistics(
        by_status={status: count for status, count in by_status.all()},
        final_by_source={
            (source or "unknown", bool(flag)): count for source, flag, count in final.all()
        },
        due=due or 0,
        waiting_to_submit=waiting or 0,
    )


async def get_idempotency_key(
    session: AsyncSession, caller: str, key: str
) -> IdempotencyKey | None:
    """A caller's idempotency key, fresh from the database."""
    return await session.get(IdempotencyKey, (caller, key), populate_existing=True)


async def add_idempotency_key(session: AsyncSession, row: IdempotencyKey) -> None:
    """Insert a key (IntegrityError if the caller already has it)."""
    session.add(row)
    await session.flush()


async def delete_idempotency_key(session: AsyncSession, row: IdempotencyKey) -> None:
    """Forget one key."""
    await session.delete(row)
    await session.flush()


async def complete_idempotency_key(
    session: AsyncSession,
    caller: str,
    key: str,
    status: int,
    body: dict[str, Any],
    completed_at: datetime,
) -> None:
    """Store the answer a key's first request got."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.caller == caller, IdempotencyKey.key == key)
        .values(response_status=status, response_body=body, completed_at=completed_at)
    )


async def delete_idempotency_keys_before(session: AsyncSession, cutoff: datetime) -> int:
    """Forget keys created before `cutoff`; how many went."""
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    assert isinstance(result, CursorResult)
    return result.rowcount


async def finished_job_ids_before(
    session: AsyncSession, cutoff: datetime, limit: int
) -> Sequence[uuid.UUID]:
    """Up to `limit` final jobs that ended before `cutoff`, oldest first, that no process holds
    and whose archiving is not under way (index ix_jobs_completed_at)."""
    query = (
        select(Job.id)
        .where(
            Job.completed_at < cutoff,
            Job.status.in_(FINAL_STATUSES),
            Job.claimed_by.is_(None),
            or_(Job.archive_status.is_(None), Job.archive_status != "pending"),
        )
        .order_by(Job.completed_at)
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def delete_finished_jobs(session: AsyncSession, job_ids: Sequence[uuid.UUID]) -> int:
    """Delete these jobs and their events, if they are still final and unclaimed; how many.

    Rows that reference a job (idempotency keys, archive images) go with it (ON DELETE CASCADE).
    """
    deletable = select(Job.id).where(
        Job.id.in_(job_ids), Job.status.in_(FINAL_STATUSES), Job.claimed_by.is_(None)
    )
    await session.execute(delete(JobEvent).where(JobEvent.job_id.in_(deletable)))
    result = await session.execute(
        delete(Job)
        .where(Job.id.in_(job_ids), Job.status.in_(FINAL_STATUSES), Job.claimed_by.is_(None))
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount
