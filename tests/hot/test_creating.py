"""The hot create stores, sends and answers a job as the jobs route does, and hands the route
everything else whole."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import select

from app.jobs.models import JobEvent
from app.spend.models import SpendCounter, SpendEntry
from app.worker.runner import Worker
from tests.hot.test_lookup import hot
from tests.support import evolink_payloads as payloads
from tests.support.rows import Sessions, run, stored

CREATE = "/v1/images/generations"
# A query string (which the route ignores) keeps a request off the hot path.
VIA_ROUTE = {"via": "fastapi"}
JOB = {"prompt": "a lighthouse", "size": "1024x1536", "n": 2, "metadata": {"order": 7}}
ROW_COLUMNS = (
    "status",
    "progress",
    "model",
    "prompt",
    "size",
    "n",
    "image_urls",
    "metadata_",
    "results",
    "usage",
    "estimated_time",
    "submit_state",
    "submit_attempts",
    "claimed_by",
    "claim_expires_at",
    "archive_status",
    "callback_received_at",
)
JSON = {"content-type": "application/json"}
SHOWN_APART = ("id", "created_at", "updated_at", "evolink_task_id")


@pytest.fixture
def postgres_only(app: FastAPI) -> None:
    if app.state.hot_database is None:
        pytest.skip("the hot paths run on PostgreSQL only")


async def first_job(client: httpx.AsyncClient) -> None:
    """The caller's first job, through the route: it makes the limit counters' rows, which the
    hot path only updates."""
    assert (await client.post("/v1/jobs", params=VIA_ROUTE, json=JOB)).status_code == 202


def accepts(evolink: respx.MockRouter, *task_ids: str) -> respx.Route:
    answers = [
        httpx.Response(200, json=payloads.created_task(t) | {"usage": {"credits_reserved": 5}})
        for t in task_ids
    ]
    return evolink.post(CREATE).mock(side_effect=answers)


async def ledger(sessions: Sessions, job_id: str) -> tuple[Any, ...]:
    async with sessions() as session:
        entry = await session.get(SpendEntry, uuid.UUID(job_id))
        assert entry is not None
        return (
            entry.caller,
            entry.model,
            entry.n,
            entry.price,
            entry.state,
            entry.evolink_reserved,
        )


async def counted(sessions: Sessions) -> dict[str, tuple[int, int]]:
    async with sessions() as session:
        rows = (await session.scalars(select(SpendCounter))).all()
        return {row.scope: (row.minute_jobs, row.in_flight) for row in rows}


async def event_kinds(sessions: Sessions, job_id: str) -> list[tuple[str, str | None, str]]:
    async with sessions() as session:
        events = await session.scalars(select(JobEvent).where(JobEvent.job_id == uuid.UUID(job_id)))
        return [(e.source, e.status, e.outcome) for e in events]


def apart(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in SHOWN_APART}


@pytest.mark.usefixtures("postgres_only")
async def test_a_create_is_stored_sent_and_answered_as_the_route_would(
    client: httpx.AsyncClient, evolink: respx.MockRouter, session_factory: Sessions
) -> None:
    sent = accepts(evolink, "task-unified-first", "task-unified-hot", "task-unified-route")
    await first_job(client)
    answered = hot("answered", "create")
    via_hot = await client.post("/v1/jobs", json=JOB)
    assert hot("answered", "create") == answered + 1
    via_route = await client.post("/v1/jobs", params=VIA_ROUTE, json=JOB)
    assert hot("answered", "create") == answered + 1

    assert via_hot.status_code == via_route.status_code == 202
    assert via_hot.headers["location"] == f"/v1/jobs/{via_hot.json()['id']}"
    assert via_hot.headers["content-type"] == via_route.headers["content-type"]
    assert apart(via_hot.json()) == apart(via_route.json())
    assert via_hot.json()["status"] == "pending"
    assert via_hot.json()["evolink_task_id"] == "task-unified-hot"
    # What EvoLink was sent is the same, but for the callback URL naming the job.
    bodies = [json.loads(call.request.content) for call in sent.calls][1:]
    assert bodies[0]["callback_url"].split("/")[-2] == via_hot.json()["id"]
    assert {**bodies[0], "callback_url": ""} == {**bodies[1], "callback_url": ""}

    hot_row = await stored(session_factory, via_hot.json()["id"])
    route_row = await stored(session_factory, via_route.json()["id"])
    for name in ROW_COLUMNS:
        assert getattr(hot_row, name) == getattr(route_row, name), name
    assert hot_row.claimed_by is None and hot_row.submit_state == "done"
    assert hot_row.next_attempt_at is not None and route_row.next_attempt_at is not None
    assert abs((hot_row.next_attempt_at - route_row.next_attempt_at).total_seconds()) < 60
    assert await event_kinds(session_factory, via_hot.json()["id"]) == await event_kinds(
        session_factory, via_route.json()["id"]
    )
    assert await ledger(session_factory, via_hot.json()["id"]) == await ledger(
        session_factory, via_route.json()["id"]
    )
    assert (await ledger(session_factory, via_hot.json()["id"]))[-1] == 5
    assert await counted(session_factory) == {"caller:alpha": (3, 3), "global": (3, 3)}


@pytest.mark.usefixtures("postgres_only")
async def test_with_no_submission_slot_free_the_job_is_queued_and_the_worker_sends_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: Sessions,
    worker: Worker,
) -> None:
    sent = accepts(evolink, "task-unified-first", "task-unified-queued")
    await first_job(client)
    submitter = app.state.submitter
    slots = submitter._slots._value
    for _ in range(slots):  # every slot busy, as under a burst
        await submitter._slots.acquire()
    try:
        response = await client.post("/v1/jobs", json=JOB)
    finally:
        for _ in range(slots):
            submitter._slots.release()
    assert response.status_code == 202
    queued = response.json()
    assert (queued["status"], queued["evolink_task_id"]) == ("queued", None)
    assert sent.call_count == 1
    row = await stored(session_factory, queued["id"])
    assert (row.submit_state, row.claimed_by) == ("waiting", None)

    answered = hot("answered", "submit")
    assert await run(worker) == 1
    assert hot("answered", "submit") == answered + 1
    assert sent.call_count == 2
    row = await stored(session_factory, queued["id"])
    assert (row.status, row.submit_state, row.evolink_task_id) == (
        "pending",
        "done",
        "task-unified-queued",
    )
    assert (row.claimed_by, row.submit_attempts) == (None, 1)
    assert await event_kinds(session_factory, queued["id"]) == [("submit", "pending", "applied")]
    assert (await ledger(session_factory, queued["id"]))[-1] == 5


@pytest.mark.usefixtures("postgres_only")
async def test_evolinks_refusal_is_answered_as_the_route_answers_it(
    client: httpx.AsyncClient, evolink: respx.MockRouter, session_factory: Sessions
) -> None:
    refusal = {"error": {"code": "content_policy_violation", "message": "no", "type": "x"}}
    accepts(evolink, "task-unified-first")
    await first_job(client)
    evolink.post(CREATE).mock(return_value=httpx.Response(400, json=refusal))
    via_hot = await client.post("/v1/jobs", json=JOB)
    via_route = await client.post("/v1/jobs", params=VIA_ROUTE, json=JOB)
    assert via_hot.status_code == via_route.status_code == 422
    assert via_hot.headers["content-type"] == "application/problem+json"
    hot_problem, route_problem = via_hot.json(), via_route.json()
    assert hot_problem.pop("job_id") != route_problem.pop("job_id")
    hot_problem.pop("instance", None), route_problem.pop("instance", None)
    assert hot_problem == route_problem
    assert via_hot.headers["location"].endswith(via_hot.json()["job_id"])
    row = await stored(session_factory, via_hot.json()["job_id"])
    assert (row.status, row.error_code, row.claimed_by) == (
        "failed",
        "content_policy_violation",
        None,
    )


@pytest.mark.usefixtures("postgres_only")
async def test_what_the_hot_create_does_not_take_gets_the_routes_own_answer(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
) -> None:
    accepts(evolink, "task-unified-keyed")
    answered = hot("answered", "create")
    cases = [
        (anonymous.post("/v1/jobs", json=JOB), 401, "unauthenticated"),
        (client.post("/v1/jobs", json={"prompt": ""}), 422, "validation_failed"),
        (client.post("/v1/jobs", json={**JOB, "n": 99}), 422, "validation_failed"),
        (client.post("/v1/jobs", content=b"{not json", headers=JSON), 422, "validation_failed"),
        (client.post("/v1/jobs", json={**JOB, "notify_url": "https://hooks.example/x"}), 422,
         None),
    ]  # fmt: skip
    for request, status, code in cases:
        response = await request
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        if code is not None:
            assert response.json()["code"] == code
    keyed = await client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "k-1"})
    replay = await client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "k-1"})
    assert keyed.status_code == replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert hot("answered", "create") == answered


@pytest.mark.usefixtures("postgres_only")
async def test_a_hot_pool_failure_before_anything_is_stored_leaves_the_create_to_the_route(
    app: FastAPI, client: httpx.AsyncClient, evolink: respx.MockRouter, session_factory: Sessions
) -> None:
    accepts(evolink, "task-unified-aside")
    await app.state.hot_database.pool.close()  # every acquire fails from now on
    response = await client.post("/v1/jobs", json=JOB)
    assert response.status_code == 202, response.text
    assert response.json()["evolink_task_id"] == "task-unified-aside"
    assert hot("passed_on", "create") > 0
    assert not app.state.hot_database.available
    listed = (await client.get("/v1/jobs")).json()["data"]
    assert [job["id"] for job in listed] == [response.json()["id"]]


@pytest.mark.usefixtures("postgres_only")
async def test_a_hot_pool_failure_after_evolink_accepted_still_records_the_task(
    app: FastAPI, client: httpx.AsyncClient, evolink: respx.MockRouter, session_factory: Sessions
) -> None:
    accepts(evolink, "task-unified-first")
    await first_job(client)

    def accept_then_lose_the_pool(request: httpx.Request) -> httpx.Response:
        app.state.hot_database.pool.terminate()  # the job is stored; the answer's apply fails
        return httpx.Response(200, json=payloads.created_task("task-unified-kept"))

    evolink.post(CREATE).mock(side_effect=accept_then_lose_the_pool)
    response = await client.post("/v1/jobs", json=JOB)
    assert response.status_code == 202, response.text
    assert response.json()["evolink_task_id"] == "task-unified-kept"
    row = await stored(session_factory, response.json()["id"])
    assert (row.status, row.submit_state, row.claimed_by) == ("pending", "done", None)
    assert not app.state.hot_database.available
