"""Helpers that put jobs in known states through the API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx

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
