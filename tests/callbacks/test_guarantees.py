"""Guarantees of the callback route that hand-made mutations of the code showed unpinned."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import respx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit
from tests.support.rows import stored


async def test_a_truncated_token_is_404_and_changes_nothing(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    for cut in (1, 21, 42):
        response = await anonymous.post(path[:-cut], json=payloads.completed_task())
        assert response.status_code == 404, cut
        assert response.json()["code"] == "job_not_found"
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "pending"


async def test_a_chunked_body_over_64_kib_is_413_without_a_content_length(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    job, path = await submit(client, evolink)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"id": "' + payloads.TASK_ID.encode() + b'", "status": "completed", "pad": "'
        for _ in range(65):
            yield b"x" * 1024
        yield b'"}'

    response = await anonymous.post(
        path, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413
    assert response.json()["code"] == "callback_too_large"
    row = await stored(session_factory, job["id"])
    assert row.status == "pending"


async def test_failed_after_processing_70_keeps_the_progress_in_the_row(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    job, path = await submit(client, evolink)
    await anonymous.post(path, json=payloads.processing_task(progress=70))
    failed = await anonymous.post(path, json=payloads.failed_task())  # carries progress 0
    assert failed.json() == {"outcome": "applied"}
    row = await stored(session_factory, job["id"])
    assert (row.status, row.progress) == ("failed", 70)


async def test_the_first_callback_time_is_kept_when_another_arrives(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    job, path = await submit(client, evolink)
    await anonymous.post(path, json=payloads.processing_task(progress=40))
    first = (await stored(session_factory, job["id"])).callback_received_at
    assert first is not None
    await anonymous.post(path, json=payloads.completed_task())
    assert (await stored(session_factory, job["id"])).callback_received_at == first
