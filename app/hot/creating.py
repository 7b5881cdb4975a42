"""`POST /v1/jobs`, hot: a new job stored in one transaction of prepared statements, and sent on
to EvoLink at once when a submission slot is free.

Taken: a JSON body that `JobCreate` accepts, from a known key, with no `Idempotency-Key` and no
`Prefer`. The job, its ledger entry (unless EvoLink's out-of-credits back-off is in force) and
its count against the caller's and then the global limits (the conditional UPDATEs of
`spend.repository.counting`, in the order `spend.service.reserve` takes them) commit together,
or not at all. Anything else (a body the schema refuses, a notify_url the caller may not use, a
limit that refuses, a counter row not made yet, the back-off) goes on to the jobs route, which
refuses or accepts it as always, as it does when the hot pool fails before the transaction
commits. The create answer is applied as `apply_submit_answer` says, or
by `Submitter.record` when it is not the common case.
"""

from __future__ import annotations

import enum
import functools
import json
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Update
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send

from app.db import utcnow
from app.errors import DATABASE_ERRORS, AppError, problem_response
from app.evolink.schemas import Task
from app.hot.applying import apply_submit_answer
from app.hot.callbacks import Body
from app.hot.database import HotDatabase, HotPathFailed
from app.hot.lookup import caller_of
from app.hot.statements import Prepared
from app.jobs import repository as jobs_repository
from app.jobs import service as jobs_service
from app.jobs.models import Job
from app.jobs.schemas import JOB_READ_COLUMNS, JobCreate, JobRead, job_read
from app.jobs.submission import Submitter
from app.notifications import service as notifications_service
from app.spend import repository as spend_repository
from app.spend import service as spend_service
from app.spend import windows
from app.spend.limits import GLOBAL_SCOPE, bounds_for, caller_scope, limits_for, window_keys
from app.spend.policy import SpendPolicy
from app.spend.prices import job_price

PATH = "/v1/jobs"
NEW_ENTRY = Prepared.of(spend_repository.new_entry(spend_service.OUT_OF_CREDITS))
_JOB_READ = TypeAdapter(JobRead)
_SKIPPED_HEADERS = (b"idempotency-key", b"prefer")


class _Refused(Exception):
    """The transaction stored nothing: the route is to answer."""


def takes_create(scope: Scope) -> bool | None:
    """True for a create the hot path may take (JSON, no Idempotency-Key, no `Prefer`)."""
    if scope["method"] != "POST" or scope["path"] != PATH or scope["query_string"]:
        return None
    json_body = False
    for name, value in scope["headers"]:
        if name in _SKIPPED_HEADERS:
            return None
        if name == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
    return json_body or None


async def answer_create(
    database: HotDatabase, scope: Scope, receive: Receive, send: Send
) -> Receive | None:
    """Store and answer a create within its caller's limits; else the `receive` to hand the
    route (the body, replayed)."""
    if not takes_create(scope):
        return receive
    state = scope["app"].state
    settings = state.settings
    caller = caller_of(scope, settings.callers)
    if caller is None:
        return receive
    body = Body(receive)
    raw = await body.read(settings.max_request_bytes)
    if raw is None:
        return body.replay()
    try:
        request = JobCreate.model_validate(json.loads(raw))
        if request.notify_url is not None:
            await notifications_service.check_notify_url(settings, caller.name, request.notify_url)
    except (ValueError, RecursionError, ValidationError, AppError):
        return body.replay()
    submitter: Submitter = state.submitter
    async with submitter.free_slot() as sending:
        submission = submitter.claim_values(1) if sending else {"next_attempt_at": utcnow()}
        values = jobs_service.new_job_values(caller.name, request, submission)
        try:
            stored = await _store(database, SpendPolicy.from_settings(settings), values)
        except _Refused:
            return body.replay()
        except HotPathFailed as failed:
            # Nothing is stored: the route may take the create (and meets the outage, if any).
            database.step_aside(failed.error)
            return body.replay()
        if sending:
            shown, problem = await _send(database, state, submitter, values)
        else:
            if state.worker is not None:
                state.worker.wake()
            shown, problem = dict(stored), None
    structlog.contextvars.bind_contextvars(caller=caller.name)
    location = f"{PATH}/{values['id']}"
    if problem is not None:
        await problem_response(problem, {"Location": location})(scope, receive, send)
        return None
    answer = _JOB_READ.dump_json(job_read(shown))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(answer)),
        (b"location", location.encode()),
    ]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": answer})
    return None


async def _store(
    database: HotDatabase, policy: SpendPolicy, values: dict[str, Any]
) -> asyncpg.Record:
    """The job, its ledger entry and its counts, in one transaction; _Refused if any of them
    may not be written."""
    at = windows.now()
    caller, price = values["caller"], job_price(policy.prices, values["model"], values["n"])
    limits, keys = limits_for(policy, caller), window_keys(at)
    job = _new_job(tuple(sorted(values)))
    blocked_after = at - timedelta(seconds=policy.out_of_credits_backoff_seconds)
    entry = NEW_ENTRY.args(
        job_id=values["id"],
        caller=caller,
        model=values["model"],
        n=values["n"],
        price=price,
        created_at=at,
        blocked_after=blocked_after,
    )
    async with database.connection() as connection, connection.transaction():
        row = await connection.fetchrow(job.sql, *job.args(**_bound(values)))
        if await connection.fetchval(NEW_ENTRY.sql, *entry) is None:
            raise _Refused
        for scope, which in ((caller_scope(caller), "caller"), (GLOBAL_SCOPE, "global")):
            update, params = spend_repository.counting(
                scope, keys, price, bounds_for(limits, which), at
            )
            counting = _prepared(update)
            if await connection.execute(counting.sql, *counting.args(**params)) != "UPDATE 1":
                raise _Refused
    return row


async def _send(
    database: HotDatabase, state: State, submitter: Submitter, values: dict[str, Any]
) -> tuple[dict[str, Any], AppError | None]:
    """Send the stored job; its columns as they then are, and the problem EvoLink's refusal
    makes (or None)."""
    job = Job(**values)
    answer = await submitter.ask(job)
    if isinstance(answer, Task):
        next_check_at = submitter.policy.first_poll_at(utcnow(), answer.estimated_time)
        try:
            row = await apply_submit_answer(
                database, job.id, answer, submitter.owner, next_check_at
            )
        except HotPathFailed as failed:
            # EvoLink has the task: the session records it, unless the database is down too.
            database.step_aside(failed.error)
            row = None
        if row is not None:
            return dict(row), None
    try:
        async with state.session_factory() as session:
            result = await submitter.record(session, job, answer)
            await session.commit()
    except DATABASE_ERRORS as exc:
        raise HotPathFailed(exc) from exc
    shown = {name: getattr(result.job, name) for name in JOB_READ_COLUMNS}
    return shown | {"metadata": result.job.metadata_}, result.problem


@functools.lru_cache(maxsize=8)
def _new_job(value_names: tuple[str, ...]) -> Prepared:
    return Prepared.of(jobs_repository.new_job(value_names))


@functools.lru_cache(maxsize=16)
def _prepared(statement: Update) -> Prepared:
    return Prepared.of(statement)


def _bound(values: dict[str, Any]) -> dict[str, Any]:
    return {
        f"value_{name}": value.value if isinstance(value, enum.Enum) else value
        for name, value in values.items()
    }
