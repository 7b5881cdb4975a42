"""The callback route: authentication, body rules, and the monotonic state machine."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from tests.conftest import client_for
from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit


async def events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/jobs/{job_id}/events")
    assert response.status_code == 200
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def callback_events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    return [e for e in await events(client, job_id) if e["source"] == "callback"]


async def test_completed_callback_stores_results(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink, n=2)
    results = ["https://cdn.example/1.png", "https://cdn.example/2.png"]
    response = await anonymous.post(path, json=payloads.completed_task(results=results))
    assert response.status_code == 200
    assert response.json() == {"outcome": "applied"}

    stored = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert stored["status"] == "completed"
    assert stored["progress"] == 100
    assert stored["results"] == results
    assert stored["completed_at"] is not None and stored["error"] is None
    [event] = await callback_events(client, job["id"])
    assert event["outcome"] == "applied" and event["status"] == "completed"
    assert event["body"] == payloads.completed_task(results=results)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            payloads.failed_task(code="content_policy_violation"),
            "failed",
            "content_policy_violation",
        ),
        (
            payloads.failed_task(code="request_cancelled", status="cancelled"),
            "cancelled",
            "request_cancelled",
        ),
        (
            payloads.failed_task(code="request_cancelled", status="canceled"),
            "cancelled",
            "request_cancelled",
        ),
        ({"id": payloads.TASK_ID, "status": "failed"}, "failed", "unknown_error"),
    ],
)
async def test_failed_and_cancelled_store_the_error(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    body: dict[str, Any],
    status: str,
    code: str,
) -> None:
    job, path = await submit(client, evolink)
    assert (await anonymous.post(path, json=body)).status_code == 200
    stored = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert stored["status"] == status
    assert stored["error"]["code"] == code
    assert stored["results"] == []


async def test_tampered_token_or_unknown_job_is_404_and_changes_nothing(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    prefix, token = path.rsplit("/", 1)
    tampered = prefix + "/" + ("A" if token[0] != "A" else "B") + token[1:]
    other_job = path.replace(job["id"], str(uuid.uuid4()))
    for bad in (tampered, other_job, prefix + "/short"):
        response = await anonymous.post(bad, json=payloads.completed_task())
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    stored = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert stored["status"] == "pending"
    assert await callback_events(client, job["id"]) == []


async def test_body_over_64_kib_is_413_and_recorded(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    body = payloads.completed_task()
    body["padding"] = "x" * (64 * 1024)
    response = await anonymous.post(path, json=body)
    assert response.status_code == 413
    [event] = await callback_events(client, job["id"])
    assert event["outcome"] == "rejected"
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "pending"


@pytest.mark.parametrize(
    "raw", [b"not json", b"[1, 2]", b'{"status": "completed"}', b'{"id": ""}', b"\xff\xfe"]
)
async def test_body_that_is_not_a_task_is_400_and_recorded(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter, raw: bytes
) -> None:
    job, path = await submit(client, evolink)
    response = await anonymous.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "callback_malformed"
    [event] = await callback_events(client, job["id"])
    assert event["outcome"] == "rejected"
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "pending"


async def test_another_tasks_id_is_409_and_changes_nothing(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    response = await anonymous.post(path, json=payloads.completed_task("task-unified-other"))
    assert response.status_code == 409
    assert response.json()["code"] == "task_mismatch"
    stored = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert stored["status"] == "pending" and stored["evolink_task_id"] == payloads.TASK_ID
    [event] = await callback_events(client, job["id"])
    assert event["outcome"] == "rejected"


async def test_a_task_bound_to_another_job_is_409_and_changes_nothing(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    await submit(client, evolink)  # bound to payloads.TASK_ID
    evolink.post("/v1/images/generations").mock(
        return_value=httpx.Response(503, json=payloads.integer_error(503, "down", "unavailable"))
    )
    response = await client.post("/v1/jobs", json={"prompt": "queued, no task yet"})
    queued = response.json()
    assert (queued["status"], queued["evolink_task_id"]) == ("queued", None)
    path = await callback_path(client, evolink)

    answer = await anonymous.post(path, json=payloads.completed_task())
    assert answer.status_code == 409
    stored = (await client.get(f"/v1/jobs/{queued['id']}")).json()
    assert (stored["status"], stored["evolink_task_id"]) == ("queued", None)


async def callback_path(client: httpx.AsyncClient, evolink: respx.MockRouter) -> str:
    """The callback path of the last job sent to EvoLink."""
    sent = json.loads(evolink.calls.last.request.content)
    return httpx.URL(sent["callback_url"]).path


async def test_callback_that_overtakes_the_create_answer_binds_the_task(
    app: FastAPI, client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    """EvoLink fails fast and calls back before its create answer reaches us."""
    async with client_for(app, None) as evolink_side:

        async def call_back_first(request: httpx.Request) -> httpx.Response:
            path = httpx.URL(json.loads(request.content)["callback_url"]).path
            early = await evolink_side.post(
                path, json=payloads.failed_task(code="invalid_parameters")
            )
            assert early.status_code == 200
            return httpx.Response(200, json=payloads.created_task())

        evolink.post("/v1/images/generations").mock(side_effect=call_back_first)
        response = await client.post("/v1/jobs", json={"prompt": "a cat"})

    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_parameters"
    assert job["evolink_task_id"] == payloads.TASK_ID
    assert job["usage"] == payloads.created_task()["usage"]
    outcomes = [(e["source"], e["outcome"]) for e in await events(client, job["id"])]
    assert outcomes == [("callback", "applied"), ("submit", "stale")]


async def test_final_state_never_changes_and_stale_is_recorded(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    assert (await anonymous.post(path, json=payloads.completed_task())).json() == {
        "outcome": "applied"
    }
    for late in (payloads.processing_task(progress=90), payloads.failed_task()):
        response = await anonymous.post(path, json=late)
        assert response.json() == {"outcome": "stale"}
    assert (await anonymous.post(path, json=payloads.completed_task())).json() == {
        "outcome": "duplicate"
    }
    stored = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert stored["status"] == "completed" and stored["error"] is None
    outcomes = [e["outcome"] for e in await callback_events(client, job["id"])]
    assert outcomes == ["applied", "stale", "stale", "duplicate"]


async def test_progress_never_goes_down_and_older_status_is_stale(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    sequence = [
        (payloads.processing_task(progress=40), "applied", 40),
        (payloads.processing_task(progress=70), "applied", 70),
        (payloads.processing_task(progress=50), "duplicate", 70),
        (payloads.processing_task(progress=70), "duplicate", 70),
        ({"id": payloads.TASK_ID, "status": "pending", "progress": 0}, "stale", 70),
    ]
    for body, outcome, progress in sequence:
        assert (await anonymous.post(path, json=body)).json() == {"outcome": outcome}
        stored = (await client.get(f"/v1/jobs/{job['id']}")).json()
        assert (stored["status"], stored["progress"]) == ("processing", progress)


async def test_unknown_status_is_recorded_not_applied(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    response = await anonymous.post(path, json={"id": payloads.TASK_ID, "status": "exploded"})
    assert response.status_code == 200
    assert response.json() == {"outcome": "rejected"}
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "pending"
    [event] = await callback_events(client, job["id"])
    assert event["status"] == "exploded" and "unknown status" in event["detail"]


async def test_concurrent_identical_callbacks_make_one_transition(
    app: FastAPI, client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    senders = [client_for(app, None) for _ in range(20)]
    try:
        answers = await asyncio.gather(
            *(s.post(path, json=payloads.completed_task()) for s in senders)
        )
    finally:
        await asyncio.gather(*(s.aclose() for s in senders))
    assert [a.status_code for a in answers] == [200] * 20
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["applied"] + ["duplicate"] * 19
    recorded = [e["outcome"] for e in await callback_events(client, job["id"])]
    assert sorted(recorded) == outcomes


async def test_events_are_private_to_the_owner(
    client: httpx.AsyncClient, beta_client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, _ = await submit(client, evolink)
    assert (await beta_client.get(f"/v1/jobs/{job['id']}/events")).status_code == 404
    [event] = await events(client, job["id"])
    assert (event["source"], event["outcome"], event["status"]) == ("submit", "applied", "pending")
