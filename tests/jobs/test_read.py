"""Looking jobs up: ownership, listing, filtering and keyset pagination."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import respx

from app.worker.runner import Worker
from tests.support import evolink_payloads as payloads
from tests.support.jobs import complete, submit


async def test_missing_or_unknown_key_is_401(anonymous: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await anonymous.get("/v1/jobs", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "unauthenticated"


async def test_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/jobs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["code"] == "job_not_found"
    assert (await client.get("/v1/jobs/not-a-uuid")).status_code == 422


async def test_callers_see_only_their_own_jobs(
    client: httpx.AsyncClient, beta_client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, _ = await submit(client, evolink)
    assert (await beta_client.get(f"/v1/jobs/{job['id']}")).status_code == 404
    assert (await beta_client.get("/v1/jobs")).json() == {"data": [], "next_cursor": None}
    assert [j["id"] for j in (await client.get("/v1/jobs")).json()["data"]] == [job["id"]]


async def test_list_is_newest_first_and_filters_by_status(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
) -> None:
    first, _ = await submit(client, evolink, task_id="task-unified-1")
    second, path = await submit(client, evolink, task_id="task-unified-2")
    await complete(anonymous, evolink, worker, path, "task-unified-2")

    listed = (await client.get("/v1/jobs")).json()["data"]
    assert [j["id"] for j in listed] == [second["id"], first["id"]]
    completed = (await client.get("/v1/jobs", params={"status": "completed"})).json()["data"]
    assert [j["id"] for j in completed] == [second["id"]]
    pending = (await client.get("/v1/jobs", params={"status": "pending"})).json()["data"]
    assert [j["id"] for j in pending] == [first["id"]]
    assert (await client.get("/v1/jobs", params={"status": "done"})).status_code == 422


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": 0}, 422),
        ({"limit": 201}, 422),
        ({"cursor": "garbage!"}, 400),
        ({"cursor": "WzEsMl0"}, 400),
    ],
)
async def test_bad_paging_parameters(
    client: httpx.AsyncClient, params: dict[str, str | int], status: int
) -> None:
    response = await client.get("/v1/jobs", params=params)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_paging_never_skips_or_repeats_while_jobs_are_created(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    # EvoLink task ids are unique; give each job its own.
    counter = iter(range(10_000))
    evolink.post("/v1/images/generations").mock(
        side_effect=lambda _request: httpx.Response(
            200, json=payloads.created_task(f"task-unified-{next(counter)}")
        )
    )

    async def create(count: int) -> list[str]:
        ids = []
        for _ in range(count):
            response = await client.post("/v1/jobs", json={"prompt": "p"})
            assert response.status_code == 202
            ids.append(response.json()["id"])
        return ids

    existing = await create(23)
    seen: list[str] = []

    async def page_through() -> None:
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 4}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/jobs", params=params)).json()
            seen.extend(j["id"] for j in page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return
            await asyncio.sleep(0)

    _, created_meanwhile = await asyncio.gather(page_through(), create(15))
    assert len(seen) == len(set(seen)), "a job was repeated"
    assert set(existing) <= set(seen), "a job that existed before paging began was skipped"
    assert set(seen) <= set(existing) | set(created_meanwhile)
    page_positions = [seen.index(i) for i in existing if i in seen]
    assert page_positions == sorted(page_positions, reverse=True), "not newest first"


async def test_last_page_has_no_cursor(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    await submit(client, evolink, task_id="task-unified-a")
    await submit(client, evolink, task_id="task-unified-b")
    page = (await client.get("/v1/jobs", params={"limit": 2})).json()
    assert len(page["data"]) == 2 and page["next_cursor"] is None
    page = (await client.get("/v1/jobs", params={"limit": 1})).json()
    assert page["next_cursor"] is not None
    rest = (await client.get("/v1/jobs", params={"limit": 1, "cursor": page["next_cursor"]})).json()
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
