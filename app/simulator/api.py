"""EvoLink's endpoints: create, read a task, credits, and the result files."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from app.simulator import errors
from app.simulator.creation import check_auth, create_task
from app.simulator.images import render_png
from app.simulator.polls import answer_poll
from app.simulator.snapshots import credits_object
from app.simulator.state import SimulatorDep
from app.simulator.tasks import RecordedRequest

router = APIRouter()


@router.post("/v1/images/generations")
async def create_generation(request: Request, sim: SimulatorDep) -> Response:
    """Create a task (or fail as the faults ask); every request is recorded."""
    body = _json_or_text(await request.body())
    record = RecordedRequest(at=sim.store.clock(), headers=request.headers.items(), body=body)
    sim.store.record_request(record)
    response: Response
    try:
        response = await create_task(sim, request.headers, body, str(request.base_url), record)
    except errors.SimError as exc:
        response = exc.response()
    record.status_code = response.status_code
    return response


# `:path` so that an id with a slash is a malformed id (400), as EvoLink answers, not a routing 404.
@router.get("/v1/tasks/{task_id:path}")
async def get_task(task_id: str, request: Request, sim: SimulatorDep) -> Response:
    """The task object at this moment, or the failure a poll fault asks for."""
    return await answer_poll(sim, task_id, request.headers)


@router.get("/v1/credits")
async def get_credits(request: Request, sim: SimulatorDep) -> Response:
    """Remaining and used credits."""
    try:
        check_auth(request.headers, sim.config.api_key)
    except errors.SimError as exc:
        return exc.response()
    return JSONResponse(credits_object(sim.store))


@router.get("/files/{task_id}/{index}.png")
async def get_file(task_id: str, index: int, sim: SimulatorDep) -> Response:
    """A result image, until result_ttl_seconds after the task completed."""
    task = sim.store.get(task_id)
    now = sim.store.clock()
    if (
        task is None
        or task.status(now) != "completed"
        or not 0 <= index < task.n
        or now > task.end_at + sim.config.result_ttl_seconds
    ):
        return PlainTextResponse("Not Found", status_code=404)
    return Response(render_png(task.prompt, index, task.size), media_type="image/png")


def _json_or_text(raw: bytes) -> Any:
    # Invalid JSON is kept as text so the control API can still show what arrived.
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")
