"""EvoLink's callback, hot.

With VERIFY_CALLBACKS (the default), the first callback of a job is deferred in one statement
(`jobs.repository.first_deferral`); with it off, a final callback that changes its job is
applied with prepared statements (app/hot/applying.py), and any other by the route's own service
(`callbacks.service.take_callback`), without FastAPI around it. Anything else (a wrong token, a
body that is not a task, a repeat under verification, a job with a history of refused
deliveries, an unknown job, a database error) goes on to the callbacks route, which records and
answers it as always.
"""

from __future__ import annotations

import uuid

import structlog
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from app.callbacks.router import MAX_CALLBACK_BYTES
from app.callbacks.service import take_callback
from app.db import utcnow
from app.errors import DATABASE_ERRORS, AppError, problem_response
from app.evolink.schemas import Task
from app.hot.applying import apply_final
from app.hot.database import HotDatabase, HotPathFailed
from app.hot.statements import Prepared
from app.jobs import repository as jobs_repository
from app.jobs.errors import TaskMismatch
from app.jobs.events import CAPPED_OUTCOMES
from app.jobs.models import EventOutcome, EventSource
from app.jobs.state_machine import LOCAL_VERDICTS, NON_FINAL, Observation, target_status
from app.metrics import CALLBACKS
from app.safe_json import storable_text

log = structlog.get_logger("app.jobs.state_machine")

PREFIX = "/callbacks/evolink/"
UUID_CHARS = 36
DEFER = Prepared.of(jobs_repository.first_deferral())
DEFERRED_DETAIL = "confirming with EvoLink"
_UNFINISHED = [str(s) for s in NON_FINAL]
_OVERTURNABLE = list(LOCAL_VERDICTS)
_CAPPED = [str(o) for o in CAPPED_OUTCOMES]
_OUTCOME_BODIES = {o: b'{"outcome":"%s"}' % o.encode() for o in EventOutcome}


def callback_of(scope: Scope) -> tuple[uuid.UUID, str] | None:
    """The job and token a callback URL names, or None."""
    path: str = scope["path"]
    if scope["method"] != "POST" or not path.startswith(PREFIX) or scope["query_string"]:
        return None
    job, _, token = path[len(PREFIX) :].partition("/")
    if len(job) != UUID_CHARS or not token or "/" in token:
        return None
    try:
        return uuid.UUID(job), token
    except ValueError:
        return None


class Body:
    """A request body read up to a limit, which can be handed on whole to the next app."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._chunks: list[bytes] = []
        self.complete = False

    async def read(self, limit: int) -> bytes | None:
        """The whole body, or None if it is over `limit` or the client left first."""
        size = 0
        while not self.complete:
            message = await self._receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            self._chunks.append(chunk)
            size += len(chunk)
            self.complete = not message.get("more_body", False)
            if size > limit:
                return None
        return b"".join(self._chunks)

    def replay(self) -> Receive:
        """A `receive` that gives what was read, then whatever the client sends next."""
        pending = list(self._chunks)
        complete = self.complete

        async def receive() -> Message:
            if pending:
                chunk = pending.pop(0)
                more = bool(pending) or not complete
                return {"type": "http.request", "body": chunk, "more_body": more}
            return await self._receive()

        return receive


async def answer_callback(
    database: HotDatabase, scope: Scope, receive: Receive, send: Send
) -> Receive | None:
    """Take a callback that changes its job; else the `receive` to hand the route (the body)."""
    named = callback_of(scope)
    if named is None:
        return receive
    job_id, token = named
    state = scope["app"].state
    if not state.signer.matches(job_id, token):
        return receive
    body = Body(receive)
    raw = await body.read(MAX_CALLBACK_BYTES)
    if raw is None:
        return body.replay()
    try:
        task = Task.model_validate_json(raw)
    except ValidationError:
        return body.replay()
    status = target_status(task)
    if status is None:
        return body.replay()
    text = raw.decode("utf-8", errors="replace")
    observation = Observation(task, EventSource.CALLBACK, text)
    if state.settings.verify_callbacks:
        if not await _defer(database, job_id, observation):
            return body.replay()
        CALLBACKS.labels(outcome=EventOutcome.DEFERRED).inc()
        if state.worker is not None:
            state.worker.wake()
        await _answer(send, EventOutcome.DEFERRED)
        return None
    if status.is_final and await apply_final(database, job_id, observation, status):
        CALLBACKS.labels(outcome=EventOutcome.APPLIED).inc()
        await _answer(send, EventOutcome.APPLIED)
        return None
    try:
        async with state.session_factory() as session:
            result = await take_callback(session, state.settings, job_id, task, text)
    except AppError:
        return body.replay()  # nothing was kept: the route answers (404) as it does
    except DATABASE_ERRORS as exc:
        raise HotPathFailed(exc) from exc
    if result.task_mismatch:
        mismatch = TaskMismatch(f"EvoLink task {task.id} is not this job's: {result.detail}")
        await problem_response(mismatch)(scope, receive, send)
    else:
        await _answer(send, result.outcome)
    return None


async def _answer(send: Send, outcome: EventOutcome) -> None:
    answer = _OUTCOME_BODIES[outcome]
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


async def _defer(database: HotDatabase, job_id: uuid.UUID, observation: Observation) -> bool:
    """The first deferral of the job, in one statement; False if it was not that."""
    task = observation.task
    assert observation.body is not None
    args = DEFER.args(
        now=utcnow(),
        source=EventSource.CALLBACK.value,
        task_status=task.status,
        outcome=EventOutcome.DEFERRED.value,
        detail=DEFERRED_DETAIL,
        body=storable_text(observation.body),
        task_id=task.id,
        job_id=job_id,
        unfinished=_UNFINISHED,
        overturnable=_OVERTURNABLE,
        capped=_CAPPED,
    )
    async with database.connection() as connection:
        if await connection.fetchval(DEFER.sql, *args) is None:
            return False
    _observed(job_id, observation, EventOutcome.DEFERRED)
    return True


def _observed(job_id: uuid.UUID, observation: Observation, outcome: EventOutcome) -> None:
    log.info(
        "task_observed",
        job_id=str(job_id),
        evolink_task_id=observation.task.id,
        source=observation.source,
        task_status=observation.task.status,
        outcome=outcome,
    )
