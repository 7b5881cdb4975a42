"""The control API under /_sim/: queue faults, inspect and end tasks, resend callbacks, reset.

No authentication: this is a local test tool.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from app.simulator.fault_syntax import FaultSyntaxError, parse_mapping
from app.simulator.faults import FaultSpec, Outcome, QueuedPoll
from app.simulator.snapshots import task_object
from app.simulator.state import Simulator, SimulatorDep
from app.simulator.tasks import SimTask, TaskStore

router = APIRouter(prefix="/_sim", tags=["simulator control"])

JsonObject = dict[str, Any]


@router.get("/health")
async def health(sim: SimulatorDep) -> JsonObject:
    """Liveness, and a reminder of what this server is."""
    return {"status": "ok", "simulator": True, "tasks": len(sim.store.tasks())}


@router.post("/faults")
async def queue_fault(request: Request, sim: SimulatorDep) -> JsonObject:
    """Queue a fault spec for the next create request(s); `count` queues it that many times."""
    values = await _json_body(request)
    count = _count(values.pop("count", 1))
    spec = _spec(values)
    return {"queued": sim.faults.push(spec, count), "spec": spec.as_dict()}


@router.get("/faults")
async def list_faults(sim: SimulatorDep) -> JsonObject:
    """Queued fault specs, next first."""
    return {"queue": [spec.as_dict() for spec in sim.faults.items()]}


@router.delete("/faults")
async def clear_faults(sim: SimulatorDep) -> JsonObject:
    """Drop every queued fault spec."""
    sim.faults.clear()
    return {"queue": []}


@router.post("/poll-faults")
async def queue_poll_fault(request: Request, sim: SimulatorDep) -> JsonObject:
    """Make the next poll(s) of any task fail: `{"poll": "503", "count": 2, "body": "html"}`."""
    polls = _polls(await _json_body(request))
    for poll in polls:
        sim.poll_faults.push(poll)
    return {"queued": len(sim.poll_faults), "polls": [asdict(poll) for poll in polls]}


@router.get("/poll-faults")
async def list_poll_faults(sim: SimulatorDep) -> JsonObject:
    """Queued poll failures, next first."""
    return {"queue": [asdict(poll) for poll in sim.poll_faults.items()]}


@router.delete("/poll-faults")
async def clear_poll_faults(sim: SimulatorDep) -> JsonObject:
    """Drop every queued poll failure (those set on tasks stay)."""
    sim.poll_faults.clear()
    return {"queue": []}


@router.get("/requests")
async def list_requests(sim: SimulatorDep) -> JsonObject:
    """Every create request received (also rejected ones), oldest first."""
    return {"requests": [record.as_dict() for record in sim.store.requests()]}


@router.get("/tasks")
async def list_tasks(sim: SimulatorDep) -> JsonObject:
    """Every task with its request, faults and callback attempts, oldest first."""
    now = sim.store.clock()
    return {"tasks": [_view(task, sim.store, now) for task in sim.store.tasks()]}


@router.get("/tasks/{task_id}")
async def get_task(task_id: str, sim: SimulatorDep) -> JsonObject:
    """One task with its request, faults and callback attempts."""
    return _view(_task(sim, task_id), sim.store, sim.store.clock())


@router.post("/tasks/{task_id}/poll-faults")
async def add_task_poll_fault(task_id: str, request: Request, sim: SimulatorDep) -> JsonObject:
    """Make this task's next poll(s) fail, after those already set: same body as /poll-faults."""
    task = _task(sim, task_id)
    task.poll_faults.extend(_polls(await _json_body(request)))
    return {"poll_faults": [asdict(poll) for poll in task.poll_faults]}


@router.get("/polls")
async def list_polls(sim: SimulatorDep) -> JsonObject:
    """Every poll received, with its task id, forced fault and answer's status, oldest first."""
    return {"polls": [asdict(poll) for poll in sim.store.polls()]}


@router.post("/tasks/{task_id}/complete")
async def complete_task(task_id: str, sim: SimulatorDep) -> JsonObject:
    """End a running task now, successfully."""
    return _end(sim, task_id, "completed", None)


@router.post("/tasks/{task_id}/fail")
async def fail_task(task_id: str, request: Request, sim: SimulatorDep) -> JsonObject:
    """End a running task now with a task error; JSON `{"code": ...}` (default service_error)."""
    code = (await _json_body(request)).get("code", "service_error")
    if not isinstance(code, str) or not code:
        raise HTTPException(422, "code must be a non-empty string")
    return _end(sim, task_id, "failed", code)


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(task_id: str, request: Request, sim: SimulatorDep) -> JsonObject:
    """End a running task now as cancelled; JSON `{"status": "canceled"}` or `"failed"` reports
    the cancellation with that status instead (the error code stays request_cancelled)."""
    status = (await _json_body(request)).get("status", "cancelled")
    if status not in ("cancelled", "canceled", "failed"):
        raise HTTPException(422, "status must be cancelled, canceled or failed")
    return _end(sim, task_id, status, "request_cancelled")


@router.post("/tasks/{task_id}/callback")
async def send_callback(task_id: str, request: Request, sim: SimulatorDep) -> JsonObject:
    """POST the task's current body to its callback URL (or JSON `url`) now, and wait.

    JSON `{"retries": false}` makes a single attempt; the answer lists the attempts made.
    """
    task = _task(sim, task_id)
    options = await _json_body(request)
    url = options.get("url", task.callback_url)
    if not isinstance(url, str) or not url:
        raise HTTPException(422, "the task has no callback_url: pass one as JSON `url`")
    attempts = await sim.dispatcher.send_now(task, url, retries=options.get("retries") is not False)
    return {"attempts": [asdict(attempt) for attempt in attempts]}


@router.post("/reset")
async def reset(sim: SimulatorDep) -> JsonObject:
    """Forget every task, request and queued fault; cancel pending callbacks; refill credits."""
    sim.reset()
    return {"reset": True}


def _view(task: SimTask, store: TaskStore, now: float) -> JsonObject:
    return {
        "id": task.id,
        "status": task.status(now),
        "task": task_object(task, now),
        "created": task.created,
        "end_at": task.end_at,
        "duration": task.duration,
        "faults": task.faults.as_dict(),
        "request": task.request.as_dict(),
        "callback": {
            "url": task.callback_url,
            "state": task.callback_state,
            "attempts": [asdict(attempt) for attempt in task.callback_attempts],
        },
        "poll_faults": [asdict(poll) for poll in task.poll_faults],
        "polls": [asdict(poll) for poll in store.polls(task.id)],
    }


def _task(sim: Simulator, task_id: str) -> SimTask:
    task = sim.store.get(task_id)
    if task is None:
        raise HTTPException(404, f"no task {task_id!r}")
    return task


def _end(sim: Simulator, task_id: str, outcome: Outcome, code: str | None) -> JsonObject:
    task = _task(sim, task_id)
    now = sim.store.clock()
    if task.is_terminal(now):
        raise HTTPException(409, f"task already {task.status(now)}")
    task.end_now(outcome, code, now)
    sim.dispatcher.schedule(task)
    return _view(task, sim.store, now)


def _count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise HTTPException(422, "count must be a positive integer")
    return count


def _spec(values: JsonObject) -> FaultSpec:
    try:
        return parse_mapping(values)
    except FaultSyntaxError as exc:
        raise HTTPException(422, f"{exc.param}: {exc}") from None


def _polls(values: JsonObject) -> list[QueuedPoll]:
    # `count`, when given, is the number of failing polls: the `:K` of a `poll=` directive.
    count = _count(values.pop("count")) if "count" in values else None
    unknown = set(values) - {"poll", "shape", "body", "retry_after"}
    spec = _spec(values)
    if unknown or spec.poll is None:
        raise HTTPException(422, "give `poll`, and optionally shape, body, retry_after, count")
    if count is not None:
        spec = replace(spec, poll=replace(spec.poll, count=count))
    return QueuedPoll.from_spec(spec)


async def _json_body(request: Request) -> JsonObject:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPException(422, "body must be JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(422, "body must be a JSON object")
    return body
