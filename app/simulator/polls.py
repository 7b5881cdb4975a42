"""`GET /v1/tasks/{id}`: the task object, or the failure a poll fault asks for."""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from app.simulator import errors
from app.simulator.creation import check_auth, hang
from app.simulator.faults import QueuedPoll
from app.simulator.snapshots import task_object
from app.simulator.state import Simulator
from app.simulator.tasks import PollRecord

# EvoLink's ids: `task-unified-<unix seconds>-<lowercase alnum>`; anything else is a 400.
TASK_ID = re.compile(r"task-unified-[0-9]{1,12}-[a-z0-9]{1,32}")


async def answer_poll(sim: Simulator, task_id: str, headers: Headers) -> Response:
    """Answer a poll: a queued fault first (the control API's, then the task's), else the task."""
    task = sim.store.get(task_id)
    fault = sim.poll_faults.pop()
    if fault is None and task is not None and task.poll_faults:
        fault = task.poll_faults.popleft()
    record = PollRecord(sim.store.clock(), task_id, fault.kind if fault else None)
    sim.store.record_poll(record)
    response = await _faulty(sim, fault) if fault is not None else _normal(sim, task_id, headers)
    record.status_code = response.status_code
    return response


def _normal(sim: Simulator, task_id: str, headers: Headers) -> Response:
    try:
        check_auth(headers, sim.config.api_key)
        if not TASK_ID.fullmatch(task_id):
            raise errors.invalid_task_id(task_id)
        task = sim.visible_task(task_id)
        if task is None:
            raise errors.task_not_found()
    except errors.SimError as exc:
        return exc.response()
    return JSONResponse(task_object(task, sim.store.clock()))


async def _faulty(sim: Simulator, fault: QueuedPoll) -> Response:
    if fault.kind == "hang":
        try:
            await hang(sim)
        except errors.SimError as exc:
            return exc.response()
    if fault.kind == "reset":
        return DroppedResponse()
    if fault.kind == "not_json":
        return HTMLResponse("<html><body>OK</body></html>", 200)
    return sim.forced_error(int(fault.kind), fault.style).response()


class DroppedResponse(Response):
    """Headers and half a body, then the connection is dropped: what a reset looks like to a client.

    Under uvicorn, an app that returns without finishing its body makes the server close the
    connection, so the client reads a truncated answer (httpx: RemoteProtocolError).
    """

    def __init__(self) -> None:
        super().__init__(status_code=200, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start a 200 that promises a body it never finishes."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "task-', "more_body": True})
