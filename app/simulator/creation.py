"""The create flow: faults first, then auth, validation and quota, then the task."""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from app.simulator import errors, fault_syntax, faults
from app.simulator.snapshots import created_object
from app.simulator.state import Simulator
from app.simulator.tasks import RecordedRequest, SimTask
from app.simulator.validation import validate_create

logger = structlog.get_logger(__name__)


def check_auth(headers: Headers, api_key: str | None) -> None:
    """Require `Authorization: Bearer <key>`: any non-empty key, or exactly `api_key` if set."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise errors.unauthorized()
    if api_key is not None and not secrets.compare_digest(key.encode(), api_key.encode()):
        raise errors.unauthorized()


async def create_task(
    sim: Simulator, headers: Headers, body: Any, base_url: str, record: RecordedRequest
) -> JSONResponse:
    """Answer a create request; raises SimError for every non-200 answer."""
    resolved = _resolve_faults(sim, headers, body)
    record.faults = resolved.as_dict()
    mode = resolved.create
    # Forced failures come before auth and validation: the test asked for exactly this answer.
    if mode.isdigit():
        raise sim.forced_error(int(mode), resolved.style)
    if mode == "hang":
        await hang(sim)
    check_auth(headers, sim.config.api_key)
    accepted = validate_create(body, sim.config.strict_callbacks)
    store = sim.store
    task = SimTask(
        id=store.new_id(),
        created=store.clock(),
        duration=resolved.duration,
        outcome=resolved.outcome,
        error_code=resolved.error_code,
        n=accepted.n,
        size=accepted.size,
        prompt=accepted.prompt,
        callback_url=accepted.callback_url,
        base_url=sim.config.public_base_url or base_url,
        faults=resolved,
        request=record,
        poll_faults=deque(resolved.queued_polls()),
    )
    if not store.can_afford(task.cost):
        raise errors.insufficient_quota()
    store.add(task)
    record.task_id = task.id
    logger.info("simulator.task_created", task_id=task.id, faults=record.faults)
    if resolved.callback == "early":
        # The callback reaches the client before the id does, as a fast real task could.
        await sim.dispatcher.deliver_final(task)
    else:
        sim.dispatcher.schedule(task)
    if mode == "accept_then_500":
        raise sim.forced_error(500, resolved.style)
    if mode == "accept_then_hang":
        await hang(sim)
    return JSONResponse(created_object(task))


def _resolve_faults(sim: Simulator, headers: Headers, body: Any) -> faults.ResolvedFaults:
    # The queued spec is consumed even when the request turns out to be invalid.
    queued = sim.faults.pop()
    prompt = body.get("prompt") if isinstance(body, dict) else None
    try:
        from_headers = fault_syntax.from_headers(headers.items())
        from_prompt = fault_syntax.from_prompt(prompt) if isinstance(prompt, str) else None
    except fault_syntax.FaultSyntaxError as exc:
        raise errors.invalid_request(f"Simulator fault: {exc}", exc.param) from None
    return faults.resolve([queued, from_headers, from_prompt], sim.config)


async def hang(sim: Simulator) -> None:
    """Leave the request unanswered for `hang_seconds`, then answer 504."""
    # Cancelled when the client goes away under uvicorn's shutdown, or by the test's own timeout.
    await asyncio.sleep(sim.config.hang_seconds)
    raise errors.gateway_timeout()
