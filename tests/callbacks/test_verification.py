"""Verify, don't trust: a final callback is a hint that EvoLink's task API must confirm."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from app.config import Settings
from app.db import utcnow
from app.worker.runner import Worker
from tests.conftest import client_for, make_settings
from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit
from tests.support.rows import Sessions, ago, history, run, set_job, stored

TASK = f"/v1/tasks/{payloads.TASK_ID}"
FORGED_RESULT = "https://attacker.example/forged.png"


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """The defaults (VERIFY_CALLBACKS on), unlike the rest of tests/callbacks."""
    return make_settings(database_url, **getattr(request, "param", {}))


def evolink_says(evolink: respx.MockRouter, answer: httpx.Response) -> respx.Route:
    route = evolink.get(TASK).mock(return_value=answer)
    route.reset()
    return route


async def test_genuine_final_callback_is_confirmed_then_applied(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    job, path = await submit(client, evolink)
    poll = evolink_says(evolink, httpx.Response(200, json=payloads.completed_task()))

    response = await anonymous.post(path, json=payloads.completed_task())
    assert response.status_code == 200
    assert response.json() == {"outcome": "deferred"}
    assert not poll.called, "the route answers without calling EvoLink"
    held = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (held["status"], held["results"]) == ("pending", [])

    await run(worker)
    assert poll.call_count == 1
    done = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (done["status"], done["results"]) == ("completed", [payloads.RESULT_URL])
    assert await history(client, job["id"]) == [
        ("submit", "applied"),
        ("callback", "deferred"),
        ("poll", "applied"),
    ]
    assert (await stored(session_factory, job["id"])).final_source == "poll"


@pytest.mark.parametrize(
    ("forged", "evolink_answer", "status", "results"),
    [
        (
            payloads.completed_task(results=[FORGED_RESULT]),
            payloads.processing_task(progress=30),
            "processing",
            [],
        ),
        (
            payloads.completed_task(results=[FORGED_RESULT]),
            payloads.completed_task(),
            "completed",
            [payloads.RESULT_URL],
        ),
        (payloads.failed_task(), payloads.processing_task(progress=30), "processing", []),
        (payloads.failed_task(code="request_cancelled", status="cancelled"), None, "pending", []),
    ],
    ids=[
        "completed-but-processing",
        "other-results",
        "failed-but-processing",
        "cancelled-but-error",
    ],
)
async def test_forged_final_callback_does_not_decide_the_job(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    forged: dict[str, Any],
    evolink_answer: dict[str, Any] | None,
    status: str,
    results: list[str],
) -> None:
    job, path = await submit(client, evolink)
    answer = httpx.Response(200, json=evolink_answer) if evolink_answer else httpx.Response(500)
    poll = evolink_says(evolink, answer)
    assert (await anonymous.post(path, json=forged)).json() == {"outcome": "deferred"}
    await run(worker)
    assert poll.call_count == 1
    now = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (now["status"], now["results"], now["error"]) == (status, results, None)


async def test_forged_callback_then_a_404_for_the_jobs_own_task_injects_no_results(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
) -> None:
    """For a job EvoLink accepted, a 404 on its own task is EvoLink's word, not the forger's."""
    job, path = await submit(client, evolink)
    poll = evolink_says(evolink, httpx.Response(404))
    forged = payloads.completed_task(results=[FORGED_RESULT])
    assert (await anonymous.post(path, json=forged)).json() == {"outcome": "deferred"}
    await run(worker)
    assert poll.call_count == 1
    now = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert now["results"] == []
    assert (now["status"], now["error"]["code"]) == ("failed", "task_not_found")


@pytest.mark.parametrize(
    "forged",
    [
        payloads.failed_task("task-unified-forged", code="content_policy_violation"),
        payloads.processing_task("task-unified-forged", progress=50),
    ],
)
async def test_forged_task_id_cannot_hijack_a_job_whose_submission_is_unknown(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
    forged: dict[str, Any],
) -> None:
    create = evolink.post("/v1/images/generations").mock(return_value=httpx.Response(500))
    job = (await client.post("/v1/jobs", json={"prompt": "a cat"})).json()
    path = httpx.URL(json.loads(create.calls.last.request.content)["callback_url"]).path
    forged_get = evolink.get("/v1/tasks/task-unified-forged").mock(return_value=httpx.Response(404))

    assert (await anonymous.post(path, json=forged)).json() == {"outcome": "deferred"}
    await run(worker)
    assert forged_get.call_count == 1
    row = await stored(session_factory, job["id"])
    assert (row.status, row.evolink_task_id, row.submit_state) == ("queued", None, "unknown")
    assert (await history(client, job["id"]))[-1] == ("poll", "rejected")

    # EvoLink's real callback still binds the job and ends it.
    real = evolink_says(evolink, httpx.Response(200, json=payloads.completed_task()))
    assert (await anonymous.post(path, json=payloads.completed_task())).json() == {
        "outcome": "deferred"
    }
    await run(worker)
    assert real.call_count == 1
    done = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (done["status"], done["evolink_task_id"]) == ("completed", payloads.TASK_ID)
    assert create.call_count == 1


async def test_forged_callback_for_a_job_we_gave_up_is_asked_about_once(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    job, path = await submit(client, evolink)
    evolink_says(evolink, httpx.Response(200, json=payloads.processing_task()))
    await set_job(session_factory, job["id"], created_at=ago(1801), next_attempt_at=ago(1))
    await run(worker)
    assert (await stored(session_factory, job["id"])).error_code == "deadline_exceeded"

    poll = evolink_says(evolink, httpx.Response(404))
    forged = payloads.completed_task(results=[FORGED_RESULT])
    assert (await anonymous.post(path, json=forged)).json() == {"outcome": "deferred"}
    await run(worker)
    await run(worker)
    assert poll.call_count == 1
    row = await stored(session_factory, job["id"])
    assert (row.status, row.results, row.next_attempt_at) == ("failed", [], None)


async def test_the_callback_route_never_calls_evolink(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: Sessions,
) -> None:
    job, path = await submit(client, evolink)
    poll = evolink_says(evolink, httpx.Response(200, json=payloads.completed_task()))
    for body in (payloads.completed_task(), payloads.failed_task(), payloads.completed_task()):
        assert (await anonymous.post(path, json=body)).status_code == 200
    assert not poll.called
    row = await stored(session_factory, job["id"])
    assert row.status == "pending" and row.callback_received_at is not None
    # Due for confirmation at once, by background work.
    assert row.next_attempt_at is not None and row.next_attempt_at <= utcnow()


@pytest.mark.parametrize("settings", [{"verify_callbacks": False}], indirect=True)
async def test_without_verification_a_final_callback_applies_at_once(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    poll = evolink_says(evolink, httpx.Response(200, json=payloads.processing_task()))
    assert (await anonymous.post(path, json=payloads.completed_task())).json() == {
        "outcome": "applied"
    }
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "completed"
    assert not poll.called


async def test_final_callback_that_overtakes_the_create_answer_is_confirmed_at_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
) -> None:
    async with client_for(app, None) as evolink_side:

        async def call_back_first(request: httpx.Request) -> httpx.Response:
            path = httpx.URL(json.loads(request.content)["callback_url"]).path
            early = await evolink_side.post(path, json=payloads.completed_task())
            assert early.json() == {"outcome": "deferred"}
            return httpx.Response(200, json=payloads.created_task())

        evolink.post("/v1/images/generations").mock(side_effect=call_back_first)
        response = await client.post("/v1/jobs", json={"prompt": "a cat"})

    assert response.json()["status"] == "pending"
    poll = evolink_says(evolink, httpx.Response(200, json=payloads.completed_task()))
    assert await run(worker) == 1, "the deferred callback is confirmed now, not after the estimate"
    assert poll.call_count == 1
    job = (await client.get(f"/v1/jobs/{response.json()['id']}")).json()
    assert (job["status"], job["results"]) == ("completed", [payloads.RESULT_URL])
