"""POST /v1/jobs: validation, what is sent to EvoLink, and every way EvoLink can answer."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.jobs.models import Job
from app.worker.runner import Worker
from tests.conftest import EVOLINK_KEY, PUBLIC_URL
from tests.support import evolink_payloads as payloads

CREATE = "/v1/images/generations"


def accept(evolink: respx.MockRouter, body: dict[str, Any] | None = None) -> respx.Route:
    return evolink.post(CREATE).mock(
        return_value=httpx.Response(200, json=body or payloads.created_task())
    )


async def test_accepted_job_is_submitted_and_stored(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    route = accept(evolink)
    body = {
        "prompt": "A lighthouse at dusk",
        "size": "3:2",
        "n": 2,
        "image_urls": ["https://example.com/ref.png"],
        "mask_url": "https://example.com/mask.png",
        "metadata": {"order": 7, "tags": ["a", "b"], "nested": {"x": None}},
    }
    response = await client.post("/v1/jobs", json=body)

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "pending"
    assert job["evolink_task_id"] == payloads.TASK_ID
    assert job["model"] == "gpt-4o-image"
    assert job["usage"] == payloads.created_task()["usage"]
    assert job["estimated_time"] == 100
    assert job["metadata"] == body["metadata"]
    assert job["results"] == [] and job["error"] is None and job["completed_at"] is None

    sent = route.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {EVOLINK_KEY}"
    sent_body = json.loads(sent.content)
    callback = sent_body.pop("callback_url")
    assert sent_body == {
        "model": "gpt-4o-image",
        "prompt": "A lighthouse at dusk",
        "size": "3:2",
        "n": 2,
        "image_urls": ["https://example.com/ref.png"],
        "mask_url": "https://example.com/mask.png",
    }
    match = re.fullmatch(
        re.escape(PUBLIC_URL) + r"/callbacks/evolink/([0-9a-f-]{36})/([\w-]{43})", callback
    )
    assert match and match.group(1) == job["id"]
    assert "?" not in callback and len(callback) <= 2048

    fetched = await client.get(f"/v1/jobs/{job['id']}")
    assert fetched.json() == job


async def test_defaults_sent_when_omitted(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    route = accept(evolink)
    response = await client.post("/v1/jobs", json={"prompt": "a cat"})
    assert response.status_code == 202
    assert response.json()["n"] == 1 and response.json()["size"] is None
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == "gpt-4o-image" and sent["n"] == 1
    assert "size" not in sent and "image_urls" not in sent and "mask_url" not in sent


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "ok", "size": "512x512"}, "size"),
        ({"prompt": "ok", "n": 3}, "n"),
        ({"prompt": "ok", "n": "2"}, "n"),
        ({"prompt": "ok", "model": "dall-e-3"}, "model"),
        (
            {"prompt": "ok", "image_urls": [f"https://e.com/{i}.png" for i in range(6)]},
            "image_urls",
        ),
        ({"prompt": "ok", "image_urls": ["ftp://e.com/a.png"]}, "image_urls.0"),
        ({"prompt": "ok", "image_urls": ["not a url"]}, "image_urls.0"),
        ({"prompt": "ok", "mask_url": "https://e.com/m.png"}, "mask_url"),
        (
            {
                "prompt": "ok",
                "image_urls": ["https://e.com/a.png", "https://e.com/b.png"],
                "mask_url": "https://e.com/m.png",
            },
            "mask_url",
        ),
        ({"prompt": "ok", "metadata": {"blob": "x" * 16400}}, "metadata"),
        ({"prompt": "ok", "metadata": ["not", "an", "object"]}, "metadata"),
        ({"prompt": "ok", "colour": "red"}, "colour"),
    ],
)
async def test_invalid_input_is_refused_before_evolink(
    client: httpx.AsyncClient, evolink: respx.MockRouter, body: dict[str, Any], field: str
) -> None:
    route = accept(evolink)
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert field in [e["field"] for e in problem["errors"]]
    assert field in problem["detail"]
    assert not route.called


async def test_each_bad_field_is_named(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    response = await client.post("/v1/jobs", json={"prompt": "", "size": "huge", "n": 5})
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"prompt", "size", "n"}


async def test_prompt_of_exactly_2000_chars_and_16k_metadata_are_accepted(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    accept(evolink)
    metadata = {"blob": "x" * (16 * 1024 - len('{"blob":""}'))}
    response = await client.post("/v1/jobs", json={"prompt": "y" * 2000, "metadata": metadata})
    assert response.status_code == 202, response.text


async def test_body_that_is_not_json_is_422(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    route = accept(evolink)
    response = await client.post(
        "/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"] == "the request body is not valid JSON"
    assert not route.called


async def _stored(factory: async_sessionmaker[AsyncSession], job_id: str) -> Job:
    async with factory() as session:
        job = await session.get(Job, uuid.UUID(job_id))
        assert job is not None
        return job


@pytest.mark.parametrize(
    ("status", "body", "problem_status", "problem_code", "job_code"),
    [
        (
            400,
            payloads.string_error("invalid_request", "prompt too long", "invalid_request_error"),
            422,
            "evolink_rejected",
            "invalid_request",
        ),
        (
            400,
            payloads.integer_error(400, "bad size", "invalid_request_error", param="size"),
            422,
            "evolink_rejected",
            "invalid_request_error",
        ),
        (
            413,
            payloads.integer_error(413, "too large", "request_too_large"),
            422,
            "evolink_rejected",
            "request_too_large",
        ),
        (
            400,
            payloads.string_error("content_policy_violation", "blocked"),
            422,
            "evolink_rejected",
            "content_policy_violation",
        ),
        (
            401,
            payloads.string_error("unauthorized", "bad key"),
            502,
            "gateway_misconfigured",
            "evolink_auth_failed",
        ),
        (
            403,
            payloads.string_error("model_access_denied", "no access"),
            502,
            "gateway_misconfigured",
            "evolink_auth_failed",
        ),
        (
            402,
            payloads.string_error("insufficient_quota", "Insufficient quota."),
            503,
            "gateway_out_of_credits",
            "evolink_out_of_credits",
        ),
    ],
)
async def test_definite_refusals_fail_the_job_at_once(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: async_sessionmaker[AsyncSession],
    status: int,
    body: dict[str, Any],
    problem_status: int,
    problem_code: str,
    job_code: str,
) -> None:
    route = evolink.post(CREATE).mock(return_value=httpx.Response(status, json=body))
    response = await client.post("/v1/jobs", json={"prompt": "a cat"})

    assert response.status_code == problem_status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == problem_code
    assert route.call_count == 1
    job = await _stored(session_factory, problem["job_id"])
    assert (job.status, job.error_code, job.submit_state) == ("failed", job_code, "done")
    assert job.completed_at is not None and job.next_attempt_at is None
    assert job.claimed_by is None
    assert response.headers["Location"] == f"/v1/jobs/{job.id}"
    if problem_code == "evolink_rejected":
        assert problem["evolink_code"] == job_code


@pytest.mark.parametrize(
    ("answer", "retry_after"),
    [
        (httpx.ConnectError("refused"), None),
        (
            httpx.Response(503, json=payloads.integer_error(503, "down", "service_unavailable")),
            None,
        ),
        (
            httpx.Response(
                429,
                json=payloads.integer_error(429, "Rate limit exceeded", "rate_limit_error"),
                headers={"Retry-After": "90"},
            ),
            90,
        ),
    ],
)
async def test_evolink_trouble_that_surely_did_not_create_a_task_queues_the_job(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: async_sessionmaker[AsyncSession],
    answer: httpx.Response | Exception,
    retry_after: int | None,
) -> None:
    route = evolink.post(CREATE).mock(
        side_effect=answer if isinstance(answer, Exception) else None,
        return_value=answer if isinstance(answer, httpx.Response) else None,
    )
    response = await client.post("/v1/jobs", json={"prompt": "a cat"})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    assert route.call_count == 1
    job = await _stored(session_factory, response.json()["id"])
    assert (job.submit_state, job.claimed_by, job.submit_attempts) == ("waiting", None, 1)
    assert job.next_attempt_at is not None
    if retry_after is not None:
        wait = (job.next_attempt_at - job.updated_at).total_seconds()
        assert retry_after <= wait < retry_after + 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ReadTimeout("slow"),
        httpx.Response(500, json=payloads.string_error("internal_error", "boom")),
        httpx.Response(502, content=b"<html>Bad gateway</html>"),
        httpx.Response(504, content=b""),
        httpx.Response(200, json={"no": "id"}),
    ],
)
async def test_a_request_that_may_have_reached_evolink_is_never_resent(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: async_sessionmaker[AsyncSession],
    worker: Worker,
    answer: httpx.Response | Exception,
) -> None:
    route = evolink.post(CREATE).mock(
        side_effect=answer if isinstance(answer, Exception) else None,
        return_value=answer if isinstance(answer, httpx.Response) else None,
    )
    response = await client.post("/v1/jobs", json={"prompt": "a cat"})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    job = await _stored(session_factory, response.json()["id"])
    assert job.submit_state == "unknown"
    assert job.next_attempt_at is not None and job.submitted_at is not None
    waited = (job.next_attempt_at - job.submitted_at).total_seconds()
    assert waited == pytest.approx(600, abs=1)

    await worker.tick()
    await worker.drain()
    assert route.call_count == 1


async def test_job_row_is_committed_before_evolink_is_called(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    seen: list[str] = []

    async def look_from_another_connection(request: httpx.Request) -> httpx.Response:
        job_id = json.loads(request.content)["callback_url"].split("/")[-2]
        job = await _stored(session_factory, job_id)
        seen.append(job.status)
        return httpx.Response(200, json=payloads.created_task())

    evolink.post(CREATE).mock(side_effect=look_from_another_connection)
    response = await client.post("/v1/jobs", json={"prompt": "a cat"})
    assert response.status_code == 202
    assert seen == ["queued"]
