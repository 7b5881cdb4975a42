"""Helpers that put jobs in known states through the API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx

from app.worker.runner import Worker
from tests.support import evolink_payloads as payloads


async def submit(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    task_id: str | None = payloads.TASK_ID,
    **body: Any,
) -> tuple[dict[str, Any], str]:
    """Submit a job that EvoLink accepts as `task_id`; the job and its callback URL path."""
    answer = payloads.created_task(task_id) if task_id else payloads.created_task()
    route = evolink.post("/v1/images/generations").mock(
        return_value=httpx.Response(200, json=answer)
    )
    response = await client.post("/v1/jobs", json={"prompt": "a cat", **body})
    assert response.status_code == 202, response.text
    callback = json.loads(route.calls.last.request.content)["callback_url"]
    return response.json(), httpx.URL(callback).path


async def complete(
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    path: str,
    task_id: str = payloads.TASK_ID,
) -> None:
    """EvoLink calls back `completed` and confirms it when the worker polls."""
    evolink.get(f"/v1/tasks/{task_id}").mock(
        return_value=httpx.Response(200, json=payloads.completed_task(task_id))
    )
    response = await anonymous.post(path, json=payloads.completed_task(task_id))
    assert response.json() == {"outcome": "deferred"}
    await worker.tick()
    await worker.drain()
