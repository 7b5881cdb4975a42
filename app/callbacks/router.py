"""The one public route: EvoLink's callback. Record, apply, answer in milliseconds."""

from __future__ import annotations

import uuid

import structlog
from fastapi import APIRouter, Request
from pydantic import ValidationError

from app.callbacks.errors import CallbackIncomplete, CallbackMalformed, CallbackTooLarge
from app.callbacks.reading import BodyIncomplete, BodyTooLarge, read_limited
from app.callbacks.service import take_callback
from app.db import SessionDep
from app.dependencies import SettingsDep, SignerDep, wake_worker
from app.errors import JobNotFound
from app.evolink.schemas import Task
from app.jobs import repository as jobs_repository
from app.jobs.errors import TaskMismatch
from app.jobs.models import EventOutcome, EventSource
from app.jobs.state_machine import record_rejection
from app.metrics import CALLBACKS
from app.openapi import problem_responses

log = structlog.get_logger(__name__)
router = APIRouter(tags=["callbacks"])

MAX_CALLBACK_BYTES = 64 * 1024


@router.post(
    "/callbacks/evolink/{job_id}/{token}",
    responses=problem_responses(400, 404, 409, 413, 422),
    summary="EvoLink's task callback (called by EvoLink, not by clients)",
)
async def receive_callback(
    job_id: uuid.UUID,
    token: str,
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    settings: SettingsDep,
) -> dict[str, str]:
    """Take a finished task EvoLink posts to us; answers which outcome it had (see
    `take_callback`)."""
    if not signer.matches(job_id, token):
        raise JobNotFound("no such callback URL")
    try:
        raw = await read_limited(request, MAX_CALLBACK_BYTES)
    except BodyTooLarge:
        await _reject(session, job_id, None, f"body over {MAX_CALLBACK_BYTES} bytes")
        raise CallbackTooLarge(
            f"callback bodies are limited to {MAX_CALLBACK_BYTES} bytes"
        ) from None
    except BodyIncomplete:
        # Nobody is left to answer, and nothing arrived to record: not an error of ours.
        log.info("callback_incomplete", job_id=str(job_id))
        raise CallbackIncomplete("the client disconnected before sending the whole body") from None
    body = raw.decode("utf-8", errors="replace")
    try:
        task = Task.model_validate_json(raw)
    except ValidationError as exc:
        fields = _invalid_fields(exc)
        await _reject(session, job_id, body, f"not an EvoLink task: invalid {fields}")
        raise CallbackMalformed(
            f"expected EvoLink's task object (a JSON object with an id); invalid: {fields}"
        ) from None

    result = await take_callback(session, settings, job_id, task, body)
    if result.outcome is EventOutcome.DEFERRED:
        wake_worker(request)
    if result.task_mismatch:
        raise TaskMismatch(f"EvoLink task {task.id} is not this job's: {result.detail}")
    return {"outcome": result.outcome}


def _invalid_fields(exc: ValidationError) -> str:
    """The fields a task body got wrong, by name only (never the values, which may be huge)."""
    names = [".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()]
    return ", ".join(list(dict.fromkeys(names))[:5]) or "body"


async def _reject(session: SessionDep, job_id: uuid.UUID, body: str | None, detail: str) -> None:
    if not await jobs_repository.job_exists(session, job_id):
        raise JobNotFound("no such callback URL")
    CALLBACKS.labels(outcome=EventOutcome.REJECTED).inc()
    await record_rejection(session, job_id, EventSource.CALLBACK, body, detail)
    await session.commit()
