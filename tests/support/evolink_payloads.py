"""EvoLink's documented payloads (shared/evolink/API.md), for faking it at the HTTP boundary."""

from __future__ import annotations

from typing import Any

TASK_ID = "task-unified-1757156493-imcg5zqt"
RESULT_URL = "https://tempfile.aiquickdraw.com/s/generated_image_url.png"


def created_task(task_id: str = TASK_ID, **overrides: Any) -> dict[str, Any]:
    """The create answer, as documented (EvoLink echoes the model as gpt-4o-image-beta now)."""
    return {
        "created": 1757156493,
        "id": task_id,
        "model": "gpt-4o-image-beta",
        "object": "image.generation.task",
        "progress": 0,
        "status": "pending",
        "task_info": {"can_cancel": True, "estimated_time": 100},
        "type": "image",
        "usage": {"billing_rule": "per_call", "credits_reserved": 2.5, "user_group": "default"},
        "some_future_field": {"ignored": True},
        **overrides,
    }


def completed_task(task_id: str = TASK_ID, results: list[str] | None = None) -> dict[str, Any]:
    return {
        "created": 1757156493,
        "id": task_id,
        "model": "gpt-4o-image",
        "object": "image.generation.task",
        "progress": 100,
        "results": results if results is not None else [RESULT_URL],
        "status": "completed",
        "task_info": {"can_cancel": False},
        "type": "image",
    }


def processing_task(task_id: str = TASK_ID, progress: int = 40) -> dict[str, Any]:
    return {
        "id": task_id,
        "object": "image.generation.task",
        "status": "processing",
        "progress": progress,
    }


def failed_task(
    task_id: str = TASK_ID, code: str = "content_policy_violation", status: str = "failed"
) -> dict[str, Any]:
    return {
        "id": task_id,
        "object": "image.generation.task",
        "status": status,
        "progress": 0,
        "error": {"code": code, "message": "Content policy violation. …", "type": "task_error"},
    }


def string_error(code: str, message: str, type_: str | None = None) -> dict[str, Any]:
    """The newer error shape: a string code."""
    return {"error": {"code": code, "message": message, "type": type_ or code}}


def integer_error(status: int, message: str, type_: str, **extra: Any) -> dict[str, Any]:
    """The older error shape: an integer code equal to the HTTP status."""
    return {"error": {"code": status, "message": message, "type": type_, **extra}}
