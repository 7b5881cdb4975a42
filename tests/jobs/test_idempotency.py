"""Idempotency-Key on POST /v1/jobs: replay, conflicts, scope per caller, and expiry."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select, update

from app.jobs.models import IdempotencyKey
from app.worker.runner import Worker
from tests.support import evolink_payloads as payloads
from tests.support.rows import Sessions, run

CREATE = "/v1/images/generations"
BODY = {"prompt": "a cat", "size": "1:1", "metadata": {"order": 7, "tags": ["a"]}}
DAY = 86400


def accept(evolink: respx.MockRouter) -> respx.Route:
    """EvoLink accepting every create as a new task."""
    ids = itertools.count(1)
    return evolink.post(CREATE).mock(
        side_effect=lambda _request: httpx.Response(
            200, json=payloads.created_task(f"task-unified-{next(ids)}")
        )
    )


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def key_count(sessions: Sessions) -> int:
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(IdempotencyKey))
        return count or 0


async def age_keys(sessions: Sessions, seconds: float) -> None:
    async with sessions() as session:
        rows = (await session.scalars(select(IdempotencyKey))).all()
        for row in rows:
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.caller == row.caller, IdempotencyKey.key == row.key)
                .values(created_at=row.created_at - timedelta(seconds=seconds))
            )
        await session.commit()


async def test_same_key_and_body_replays_the_first_job(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    create = accept(evolink)
    first = await client.post("/v1/jobs", json=BODY, headers=key("order-7"))
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers

    # The same JSON, in another key order and spacing.
    same = json.dumps(dict(reversed(list(BODY.items()))), indent=2)
    again = await client.post(
        "/v1/jobs",
        content=same,
        headers={**key("order-7"), "Content-Type": "application/json"},
    )
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json() == first.json()
    assert create.call_count == 1
    assert len((await client.get("/v1/jobs")).json()["data"]) == 1


async def test_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    create = accept(evolink)
    assert (await client.post("/v1/jobs", json=BODY, headers=key("k1"))).status_code == 202
    other = await client.post("/v1/jobs", json={**BODY, "prompt": "a dog"}, headers=key("k1"))
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "idempotency_key_reused"
    assert create.call_count == 1
    assert len((await client.get("/v1/jobs")).json()["data"]) == 1


async def test_same_key_while_the_first_request_is_in_flight_is_409(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(_request: httpx.Request) -> httpx.Response:
        entered.set()
        await release.wait()
        return httpx.Response(200, json=payloads.created_task())

    create = evolink.post(CREATE).mock(side_effect=slow)

    async def second() -> httpx.Response:
        await entered.wait()
        try:
            return await client.post("/v1/jobs", json=BODY, headers=key("in-flight"))
        finally:
            release.set()

    first, conflict = await asyncio.wait_for(
        asyncio.gather(client.post("/v1/jobs", json=BODY, headers=key("in-flight")), second()),
        timeout=10,
    )
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["code"] == "idempotency_key_in_flight"
    assert first.status_code == 202
    assert create.call_count == 1
    replay = await client.post("/v1/jobs", json=BODY, headers=key("in-flight"))
    assert replay.status_code == 202 and replay.json()["id"] == first.json()["id"]


async def test_identical_requests_racing_create_one_job(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    create = accept(evolink)
    answers = await asyncio.gather(
        *(client.post("/v1/jobs", json=BODY, headers=key("race")) for _ in range(5))
    )
    assert {a.status_code for a in answers} <= {202, 409}
    assert create.call_count == 1
    assert len({a.json()["id"] for a in answers if a.status_code == 202}) == 1
    assert len((await client.get("/v1/jobs")).json()["data"]) == 1


async def test_keys_are_scoped_per_caller(
    client: httpx.AsyncClient, beta_client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    create = accept(evolink)
    alpha = await client.post("/v1/jobs", json=BODY, headers=key("shared"))
    beta = await beta_client.post("/v1/jobs", json=BODY, headers=key("shared"))
    assert alpha.status_code == beta.status_code == 202
    assert "Idempotent-Replayed" not in beta.headers
    assert alpha.json()["id"] != beta.json()["id"]
    assert create.call_count == 2
    assert (await beta_client.get(f"/v1/jobs/{alpha.json()['id']}")).status_code == 404


async def test_a_first_answer_that_was_a_problem_is_replayed(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    refusal = payloads.string_error("content_policy_violation", "blocked")
    create = evolink.post(CREATE).mock(return_value=httpx.Response(400, json=refusal))
    first = await client.post("/v1/jobs", json=BODY, headers=key("refused"))
    assert first.status_code == 422 and first.json()["code"] == "evolink_rejected"

    evolink.post(CREATE).mock(return_value=httpx.Response(200, json=payloads.created_task()))
    again = await client.post("/v1/jobs", json=BODY, headers=key("refused"))
    assert again.status_code == 422
    assert again.headers["content-type"] == "application/problem+json"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert create.call_count == 1


async def test_a_key_is_kept_for_24_hours(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    create = accept(evolink)
    first = await client.post("/v1/jobs", json=BODY, headers=key("day-old"))
    await age_keys(session_factory, DAY - 60)
    await run(worker)
    again = await client.post("/v1/jobs", json=BODY, headers=key("day-old"))
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert create.call_count == 1


async def test_an_expired_key_is_forgotten_on_reuse(
    client: httpx.AsyncClient, evolink: respx.MockRouter, session_factory: Sessions
) -> None:
    create = accept(evolink)
    first = await client.post("/v1/jobs", json=BODY, headers=key("old"))
    await age_keys(session_factory, DAY + 1)
    again = await client.post("/v1/jobs", json={**BODY, "prompt": "a dog"}, headers=key("old"))
    assert again.status_code == 202, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert create.call_count == 2
    assert await key_count(session_factory) == 1


async def test_expired_keys_are_purged_by_background_work(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    accept(evolink)
    for name in ("a", "b"):
        await client.post("/v1/jobs", json=BODY, headers=key(name))
    await age_keys(session_factory, DAY + 1)
    await client.post("/v1/jobs", json=BODY, headers=key("fresh"))
    assert await key_count(session_factory) == 3
    await run(worker)
    assert await key_count(session_factory) == 1


@pytest.mark.parametrize("value", ["x" * 256, ""], ids=["too-long", "empty"])
async def test_invalid_key_is_400_and_creates_nothing(
    client: httpx.AsyncClient, evolink: respx.MockRouter, value: str
) -> None:
    create = accept(evolink)
    response = await client.post("/v1/jobs", json=BODY, headers=key(value))
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "idempotency_key_invalid"
    assert not create.called
    assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_longest_key_is_accepted(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    accept(evolink)
    longest = "k" * 255
    first = await client.post("/v1/jobs", json=BODY, headers=key(longest))
    assert first.status_code == 202
    again = await client.post("/v1/jobs", json=BODY, headers=key(longest))
    assert again.json()["id"] == first.json()["id"]
