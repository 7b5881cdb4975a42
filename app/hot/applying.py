"""A final observation of a job's task, applied in one transaction of prepared statements.

The change is the state machine's own (`state_machine.change_for`); `jobs.repository.final_change`
makes it, records the `applied` event and signals waiters in one statement, which also reads the
job's ledger entry; the entry and the counters of its windows are then settled as
`spend.settlement` says, in one more. Anything that statement does not change (a
repeat, a stale or crossed task, a failed job whose ending goes through the outbox) writes
nothing here: it is left to `state_machine.apply_observation`, which classifies and records it.
"""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from app.db import utcnow
from app.events.changes import CHANNEL
from app.evolink.schemas import Task
from app.hot.database import HotDatabase
from app.hot.statements import Prepared
from app.jobs import repository as jobs_repository
from app.jobs.models import EventOutcome, EventSource, Job, JobStatus
from app.jobs.state_machine import Observation, change_for, target_status
from app.metrics import job_finished
from app.safe_json import storable_text
from app.spend import repository as spend_repository
from app.spend import windows
from app.spend.models import SpendEntry
from app.spend.settlement import Settlement, evolink_credits_reserved, settled, settlement

log = structlog.get_logger("app.jobs.state_machine")

SETTLE_ENTRY = Prepared.of(spend_repository.settle_entry())
# Failed and cancelled jobs with a notify_url queue their webhook as they end (the outbox);
# a completed job queues it when its archiving ends.
OUTBOX_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED)


@functools.lru_cache(maxsize=16)
def _final_change(value_names: tuple[str, ...], keep_notify_url: bool) -> Prepared:
    return Prepared.of(jobs_repository.final_change(value_names, keep_notify_url))


@functools.lru_cache(maxsize=16)
def _submit_answer(value_names: tuple[str, ...], reserved: bool) -> Prepared:
    return Prepared.of(jobs_repository.submit_answer(value_names, reserved))


@functools.lru_cache(maxsize=4)
def _settlement_statement(correct: bool, release: bool) -> Prepared:
    return Prepared.of(spend_repository.settlement_statement(correct, release))


async def apply_final(
    database: HotDatabase,
    job_id: uuid.UUID,
    observation: Observation,
    status: JobStatus,
    also: Mapping[str, Any] | None = None,
) -> bool:
    """Apply `observation`, whose task is final with our `status`, setting the columns `also`
    too if it changes the job; False if nothing changed."""
    assert status.is_final and observation.body is not None
    task, source = observation.task, observation.source
    change = change_for(task, status, source)
    values = change.values | dict(also or {})
    statement = _final_change(tuple(sorted(values)), status in OUTBOX_STATUSES)
    now = utcnow()
    args = statement.args(
        **{f"value_{name}": _plain(value) for name, value in values.items()},
        progress=change.progress,
        task_id=task.id,
        # A callback stamps its arrival as the route does; a poll leaves the stamp alone.
        callback_at=now if source is EventSource.CALLBACK else None,
        job_id=job_id,
        from_statuses=change.from_statuses,
        overturn_codes=list(change.overturn_local_verdicts),
        now=now,
        source=source.value,
        task_status=task.status,
        outcome=EventOutcome.APPLIED.value,
        body=storable_text(observation.body),
        channel=CHANNEL,
    )
    async with database.connection() as connection, connection.transaction():
        row = await connection.fetchrow(statement.sql, *args)
        if row is None:
            return False
        done = None
        if row["entry_caller"] is not None:  # else created before the ledger existed
            at = windows.now()
            done = _settlement(row, status, observation, at)
            await _write(connection, done, job_id, at)
    job_finished(source, status)
    if done is not None:
        settled(done)
    log.info(
        "task_observed",
        job_id=str(job_id),
        evolink_task_id=task.id,
        source=source,
        task_status=task.status,
        outcome=EventOutcome.APPLIED,
    )
    return True


async def _write(
    connection: asyncpg.Connection, done: Settlement, job_id: uuid.UUID, at: datetime
) -> None:
    """The entry settled, and the counters of its windows corrected, in one statement."""
    if not (done.delta or done.release):
        statement = SETTLE_ENTRY
    else:
        statement = _settlement_statement(bool(done.delta), done.release)
    entry = {"evolink_reserved": None} | {
        name: _plain(value) for name, value in done.entry_values.items()
    }
    args = statement.args(
        **entry,
        job_id=job_id,
        scopes=list(done.scopes),
        at=at,
        delta=done.delta,
        current_day=done.day_key,
        current_month=done.month_key,
    )
    await connection.execute(statement.sql, *args)


def _settlement(row: Any, status: JobStatus, observation: Observation, at: datetime) -> Settlement:
    job = Job(
        id=row["id"],
        n=row["n"],
        results=row["results"],
        usage=row["usage"],
        evolink_task_id=row["evolink_task_id"],
        submit_state=row["submit_state"],
    )
    entry = SpendEntry(
        job_id=row["id"],
        caller=row["entry_caller"],
        price=row["price"],
        evolink_reserved=row["evolink_reserved"],
        charged=row["charged"],
        state=row["state"],
        created_at=row["entry_created_at"],
    )
    return settlement(job, entry, status, observation.source, at)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


async def apply_submit_answer(
    database: HotDatabase, job_id: uuid.UUID, task: Task, owner: str, next_check_at: datetime
) -> asyncpg.Record | None:
    """EvoLink's create answer `task` for a job that `owner` is sending, applied and the claim
    released in one statement, in the common case (an unfinished task, no callback before it);
    the job's new row, or None if that is not the case (for `Submitter.record`)."""
    status = target_status(task)
    if status is None or status.is_final:
        return None
    change = change_for(task, status, EventSource.SUBMIT, next_check_at)
    reserved = evolink_credits_reserved(task.usage)
    statement = _submit_answer(tuple(sorted(change.values)), reserved is not None)
    args = statement.args(
        **{f"value_{name}": _plain(value) for name, value in change.values.items()},
        progress=change.progress,
        task_id=task.id,
        job_id=job_id,
        from_statuses=change.from_statuses,
        same_status=status.value,
        below_progress=change.progress,
        owner=owner,
        now=utcnow(),
        source=EventSource.SUBMIT.value,
        task_status=task.status,
        outcome=EventOutcome.APPLIED.value,
        body=storable_text(task.model_dump_json(exclude_none=True)),
        channel=CHANNEL,
        reserved=reserved,
    )
    async with database.connection() as connection:
        row: asyncpg.Record | None = await connection.fetchrow(statement.sql, *args)
    if row is not None:
        log.info(
            "task_observed",
            job_id=str(job_id),
            evolink_task_id=task.id,
            source=EventSource.SUBMIT,
            task_status=task.status,
            outcome=EventOutcome.APPLIED,
        )
    return row
