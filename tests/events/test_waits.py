"""`Prefer: wait=N` on GET and POST /v1/jobs, in-process on SQLite and PostgreSQL.

The re-check is set to a minute and the waits that must be woken ask for the full minute: a
waiter that answers before its deadline (BEFORE_DEADLINE, half of it) was woken by the change
signal (pg_notify through the listener, or SQLite's in-process signal), not by the re-check.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import _empty_tables, make_settings
from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit

BEFORE_DEADLINE = 30  # seconds: half the wait asked for; a woken waiter answers long before


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url, verify_callbacks=False, wait_recheck_seconds=60, max_waiters=2
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, run_worker=False)
    async with LifespanManager(application):
        yield application
        await _empty_tables(application.state.session_factory)


async def waiting(app: FastAPI, count: int) -> None:
    """Until `count` waiters sleep on their jobs (each has read its job once)."""
    while True:
        watches = app.state.waiters.hub.open_watches()
        if len(watches) == count and all(watch.seen is not None for watch in watches):
            return
        await asyncio.sleep(0.01)


async def asleep(app: FastAPI) -> None:
    """Until the one waiter sleeps holding no database connection (it may read again first:
    on PostgreSQL the signal of its own job's creation can reach it after its first read)."""
    while True:
        if app.state.engine.pool.checkedout() == 0:
            break
        await asyncio.sleep(0.01)
    await waiting(app, 1)


async def held(app: FastAPI, request: Coroutine[Any, Any, httpx.Response]) -> asyncio.Task[Any]:
    """Start `request` and return once it is waiting, holding no database connection."""
    task = asyncio.create_task(request)
    await asyncio.wait_for(waiting(app, 1), BEFORE_DEADLINE)
    await asyncio.wait_for(asleep(app), BEFORE_DEADLINE)  # the waiter holds no connection
    assert not task.done()
    return task


async def test_get_with_wait_answers_once_the_callback_is_applied(
    app: FastAPI,
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
) -> None:
    job, path = await submit(client, evolink)
    task = await held(app, client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"}))

    assert (await anonymous.post(path, json=payloads.processing_task(progress=30))).is_success
    await asyncio.sleep(0.2)
    assert not task.done()  # progress is not an end
    assert (await anonymous.post(path, json=payloads.completed_task())).is_success

    answer = await asyncio.wait_for(task, BEFORE_DEADLINE)
    assert answer.status_code == 200
    assert answer.headers["Preference-Applied"] == "wait=60"
    assert answer.json()["status"] == "completed"
    assert answer.json()["results"] == [payloads.RESULT_URL]
    assert app.state.waiters.hub.waiting == 0


async def test_get_with_wait_answers_the_job_as_it_stands_after_n_seconds(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, _ = await submit(client, evolink)
    answer = await client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=1"})
    assert answer.status_code == 200
    assert answer.headers["Preference-Applied"] == "wait=1"
    assert answer.json()["status"] == "pending"


async def test_a_final_job_is_answered_at_once_and_the_wait_is_clamped_to_60(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    await anonymous.post(path, json=payloads.failed_task())
    answer = await client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=3600"})
    assert answer.headers["Preference-Applied"] == "wait=60"
    assert answer.json()["status"] == "failed"


async def test_an_unreadable_prefer_is_ignored(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, _ = await submit(client, evolink)
    for prefer in ("wait=soon", "wait=-1", "respond-async"):
        answer = await client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": prefer})
        assert answer.status_code == 200
        assert "Preference-Applied" not in answer.headers
        assert answer.json()["status"] == "pending"


async def test_waiting_on_another_callers_job_is_404(
    client: httpx.AsyncClient, beta_client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, _ = await submit(client, evolink)
    for url in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{uuid.uuid4()}"):
        answer = await beta_client.get(url, headers={"Prefer": "wait=30"})
        assert answer.status_code == 404
        assert answer.json()["code"] == "job_not_found"
    stream = await beta_client.get(f"/v1/jobs/{job['id']}/stream")
    assert stream.status_code == 404 and stream.json()["code"] == "job_not_found"


async def test_post_with_wait_answers_the_job_once_it_ends(
    app: FastAPI,
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
) -> None:
    route = evolink.post("/v1/images/generations").mock(
        return_value=httpx.Response(200, json=payloads.created_task())
    )
    task = await held(
        app, client.post("/v1/jobs", json={"prompt": "a cat"}, headers={"Prefer": "wait=60"})
    )
    callback = httpx.URL(json.loads(route.calls.last.request.content)["callback_url"])
    await anonymous.post(callback.path, json=payloads.completed_task())

    answer = await asyncio.wait_for(task, BEFORE_DEADLINE)
    assert answer.status_code == 202
    assert answer.headers["Preference-Applied"] == "wait=60"
    job = answer.json()
    assert job["status"] == "completed"
    assert answer.headers["Location"] == f"/v1/jobs/{job['id']}"


async def test_post_with_wait_of_a_refused_job_answers_the_problem_at_once(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    evolink.post("/v1/images/generations").mock(
        return_value=httpx.Response(
            400, json={"error": {"code": "invalid_request", "message": "no", "type": "x"}}
        )
    )
    answer = await client.post("/v1/jobs", json={"prompt": "a cat"}, headers={"Prefer": "wait=30"})
    assert answer.status_code == 422
    assert "Preference-Applied" not in answer.headers


async def test_past_the_cap_waiters_and_streams_get_503_with_retry_after(
    app: FastAPI,
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
) -> None:
    job, path = await submit(client, evolink)
    url = f"/v1/jobs/{job['id']}"
    first = asyncio.create_task(client.get(url, headers={"Prefer": "wait=60"}))
    second = asyncio.create_task(client.get(url, headers={"Prefer": "wait=60"}))
    await asyncio.wait_for(waiting(app, 2), BEFORE_DEADLINE)  # the cap (MAX_WAITERS=2) is reached

    for refused in (
        await client.get(url, headers={"Prefer": "wait=20"}),
        await client.get(f"{url}/stream"),
    ):
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["code"] == "too_many_waiters"
    assert (await client.get(url)).status_code == 200  # not waiting: served as ever

    await anonymous.post(path, json=payloads.completed_task())
    answers = await asyncio.wait_for(asyncio.gather(first, second), BEFORE_DEADLINE)
    assert [a.json()["status"] for a in answers] == ["completed", "completed"]
    assert app.state.waiters.hub.waiting == 0


async def test_a_stream_of_a_settled_job_resumed_after_its_last_event_is_204(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    await anonymous.post(path, json=payloads.failed_task())
    stream = await client.get(f"/v1/jobs/{job['id']}/stream")  # ends at once: the job is final
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    ids = [line[4:] for line in stream.text.splitlines() if line.startswith("id: ")]
    assert len(ids) == 1 and '"status":"failed"' in stream.text

    resumed = await client.get(f"/v1/jobs/{job['id']}/stream", headers={"Last-Event-ID": ids[0]})
    assert resumed.status_code == 204
    older = str(int(ids[0]) - 1)
    again = await client.get(f"/v1/jobs/{job['id']}/stream", headers={"Last-Event-ID": older})
    assert again.status_code == 200 and f"id: {ids[0]}" in again.text


async def test_an_unreadable_last_event_id_is_400(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, _ = await submit(client, evolink)
    for value in ("abc", "-1", "1.5", "9" * 40):
        answer = await client.get(f"/v1/jobs/{job['id']}/stream", headers={"Last-Event-ID": value})
        assert answer.status_code == 400
        assert answer.json()["code"] == "invalid_last_event_id"
