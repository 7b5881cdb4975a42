"""The JSON bodies EvoLink sends: task objects (create answer, polls, callbacks) and credits."""

from __future__ import annotations

import math
from typing import Any

from app.simulator.errors import task_error_message
from app.simulator.tasks import SimTask, TaskStore

# EvoLink maps gpt-4o-image to this model and echoes it back.
ECHOED_MODEL = "gpt-4o-image-beta"

JsonObject = dict[str, Any]


def result_urls(task: SimTask) -> list[str]:
    """Absolute URLs of a completed task's images, served by the simulator itself."""
    base = task.base_url.rstrip("/")
    return [f"{base}/files/{task.id}/{index}.png" for index in range(task.n)]


def task_object(task: SimTask, now: float) -> JsonObject:
    """The task as `GET /v1/tasks/{id}` and callbacks show it at time `now`."""
    status = task.status(now)
    body: JsonObject = {
        "created": int(task.created),
        "id": task.id,
        "model": ECHOED_MODEL,
        "object": "image.generation.task",
        "progress": task.progress(now),
        "status": status,
        "task_info": _task_info(task, now),
        "type": "image",
    }
    if status in ("pending", "processing"):
        body["usage"] = _usage(task)
    elif status == "completed":
        body["results"] = result_urls(task)
    else:
        code = task.error_code or (
            "request_cancelled" if status in ("cancelled", "canceled") else "service_error"
        )
        body["error"] = {"code": code, "message": task_error_message(code), "type": "task_error"}
    return body


def created_object(task: SimTask) -> JsonObject:
    """The create answer: always the task as it was when accepted (pending, progress 0)."""
    return {
        "created": int(task.created),
        "id": task.id,
        "model": ECHOED_MODEL,
        "object": "image.generation.task",
        "progress": 0,
        "status": "pending",
        "task_info": {"can_cancel": True, "estimated_time": _seconds(task.duration)},
        "type": "image",
        "usage": _usage(task),
    }


def stale_object(task: SimTask) -> JsonObject:
    """An out-of-date "processing" body, for the stale-callback fault."""
    body = created_object(task)
    body["status"] = "processing"
    body["progress"] = 50
    body["task_info"] = {"can_cancel": True, "estimated_time": _seconds(task.duration / 2)}
    return body


def credits_object(store: TaskStore) -> JsonObject:
    """`GET /v1/credits`: the key's and the account's balances (one and the same here)."""
    remaining = round(store.remaining_credits(), 2)
    used = round(store.used_credits(), 2)
    return {
        "success": True,
        "message": "",
        "data": {
            "token": {
                "remaining_credits": remaining,
                "used_credits": used,
                "unlimited_credits": False,
            },
            "user": {"remaining_credits": remaining, "used_credits": used},
        },
    }


def _task_info(task: SimTask, now: float) -> JsonObject:
    if task.is_terminal(now):
        return {"can_cancel": False}
    return {"can_cancel": True, "estimated_time": _seconds(task.end_at - now)}


def _usage(task: SimTask) -> JsonObject:
    return {"billing_rule": "per_call", "credits_reserved": task.cost, "user_group": "default"}


def _seconds(value: float) -> int:
    return max(0, math.ceil(value))
