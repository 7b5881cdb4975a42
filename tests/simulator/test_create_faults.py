"""Create requests answered with chosen HTTP errors, hangs, and accepted-then-failed answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

import httpx
import pytest

from tests.simulator.conftest import (
    CALLBACK_URL,
    FAST,
    Receiver,
    StartSim,
    create,
    wait_callback_state,
)


async def _requests(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    records = (await client.get("/_sim/requests")).json()["requests"]
    assert isinstance(records, list)
    return records


async def _task_ids(client: httpx.AsyncClient) -> list[str]:
    return [task["id"] for task in (await client.get("/_sim/tasks")).json()["tasks"]]


async def _has_requests(client: httpx.AsyncClient) -> bool:
    return bool(await _requests(client))


async def _has_tasks(client: httpx.AsyncClient) -> bool:
    return bool(await _task_ids(client))


@pytest.mark.parametrize(
    ("create_mode", "status", "error"),
    [
        ("400", 400, {"code": "invalid_request", "type": "invalid_request_error", "param": None}),
        ("401", 401, {"code": "unauthorized", "type": "authentication_error"}),
        ("402", 402, {"code": "insufficient_quota", "type": "insufficient_quota"}),
        ("403", 403, {"code": "model_access_denied", "type": "permission_error"}),
        ("413", 413, {"code": 413, "type": "invalid_request_error"}),
        ("500", 500, {"code": "internal_error", "type": "api_error"}),
        ("502", 502, {"code": 502, "type": "upstream_error"}),
        (
            "503",
            503,
            {
                "code": 503,
                "type": "service_unavailable_error",
                "fallback_suggestion": "retry after 30 seconds",
            },
        ),
    ],
)
async def test_forced_errors_use_evolinks_shapes_and_create_nothing(
    sim: httpx.AsyncClient, create_mode: str, status: int, error: dict[str, Any]
) -> None:
    response = await create(sim, callback_url=CALLBACK_URL, prompt=f"x [sim create={create_mode}]")
    assert response.status_code == status
    body = response.json()["error"]
    assert isinstance(body.pop("message"), str)
    assert body == error
    assert "retry-after" not in response.headers
    assert await _task_ids(sim) == []
    (record,) = await _requests(sim)
    assert (record["status_code"], record["task_id"]) == (status, None)


async def test_429_carries_retry_after_default_and_chosen(sim: httpx.AsyncClient) -> None:
    default = await create(sim, headers={"X-Sim-Create": "429"})
    chosen = await create(sim, prompt="x [sim create=429 retry_after=3 shape=integer]")
    assert default.headers["retry-after"] == "2"
    assert chosen.headers["retry-after"] == "3"
    assert chosen.json() == {
        "error": {
            "code": 429,
            "message": "Rate limit exceeded",
            "type": "rate_limit_error",
            "fallback_suggestion": "retry after 3 seconds",
        }
    }


async def test_429_without_retry_after(sim: httpx.AsyncClient) -> None:
    response = await create(sim, prompt="x [sim create=429 retry_after=none shape=old]")
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    # Without a header, the older shape still suggests the wait EvoLink's pages show.
    assert response.json()["error"]["fallback_suggestion"] == "retry after 60 seconds"


async def test_each_status_alternates_between_the_two_shapes_by_default(
    sim: httpx.AsyncClient,
) -> None:
    answers = [(await create(sim, headers={"X-Sim-Create": "402"})).json() for _ in range(3)]
    assert [a["error"]["code"] for a in answers] == [
        "insufficient_quota",
        402,
        "insufficient_quota",
    ]
    first_503 = await create(sim, headers={"X-Sim-Create": "503"})
    assert first_503.json()["error"]["code"] == 503  # each status starts from its documented shape


@pytest.mark.parametrize("shape", ["string", "integer"])
async def test_a_fault_or_the_config_can_fix_the_shape(
    start_sim: StartSim, shape: Literal["string", "integer"]
) -> None:
    fixed = await start_sim(replace(FAST, error_shape=shape))
    by_config = [await create(fixed, headers={"X-Sim-Create": "500"}) for _ in range(2)]
    other = "integer" if shape == "string" else "string"
    by_fault = await create(fixed, headers={"X-Sim-Create": "500", "X-Sim-Shape": other})
    expected = {"string": "internal_error", "integer": 500}
    assert [r.json()["error"]["code"] for r in by_config] == [expected[shape]] * 2
    assert by_fault.json()["error"]["code"] == expected[other]


async def test_random_shapes_repeat_with_the_same_seed(start_sim: StartSim) -> None:
    async def codes(seed: int) -> list[object]:
        client = await start_sim(replace(FAST, error_shape="random", error_seed=seed))
        answers = [await create(client, headers={"X-Sim-Create": "429"}) for _ in range(16)]
        return [answer.json()["error"]["code"] for answer in answers]

    first, again = await codes(7), await codes(7)
    assert first == again
    assert set(first) == {"rate_limit_exceeded", 429}


@pytest.mark.parametrize("status", ["502", "503", "500", "429"])
async def test_error_bodies_can_be_a_gateway_page_or_empty(
    sim: httpx.AsyncClient, status: str
) -> None:
    page = await create(sim, headers={"X-Sim-Create": status, "X-Sim-Body": "html"})
    empty = await create(sim, prompt=f"x [sim create={status} body=empty]")
    assert (page.status_code, empty.status_code) == (int(status), int(status))
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.startswith("<html>") and f"<title>{status} " in page.text
    assert (empty.content, empty.headers["content-length"]) == (b"", "0")
    assert await _task_ids(sim) == []


async def test_503_carries_retry_after_only_when_chosen(sim: httpx.AsyncClient) -> None:
    response = await create(sim, headers={"X-Sim-Create": "503", "X-Sim-Retry-After": "7"})
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["fallback_suggestion"] == "retry after 7 seconds"


async def test_forced_errors_come_before_auth_and_validation(sim: httpx.AsyncClient) -> None:
    sim.headers.pop("Authorization")
    response = await create(sim, model="dall-e", headers={"X-Sim-Create": "429"})
    assert response.status_code == 429


async def test_accept_then_500_creates_the_task_and_calls_back(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    response = await create(
        sim, callback_url=CALLBACK_URL, headers={"X-Sim-Create": "accept_then_500"}
    )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    (task_id,) = await _task_ids(sim)
    (call,) = await receiver.wait_for(1)
    assert (call.body["id"], call.body["status"]) == (task_id, "completed")
    (record,) = await _requests(sim)
    assert (record["status_code"], record["task_id"]) == (500, task_id)


async def test_accept_then_500_still_validates(sim: httpx.AsyncClient) -> None:
    response = await create(sim, n=3, headers={"X-Sim-Create": "accept-then-500"})
    assert response.status_code == 400
    assert await _task_ids(sim) == []


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    # The deadline only stops a broken test; a loaded machine never makes a passing one fail.
    async with asyncio.timeout(30):
        while True:
            if await check():
                return
            await asyncio.sleep(0.01)


async def test_hang_never_answers_and_creates_nothing(sim: httpx.AsyncClient) -> None:
    pending = asyncio.create_task(create(sim, prompt="x [sim create=hang]"))
    try:
        # The handler records the request and goes straight to its wait, with no await between:
        # once the record is visible, the request is hanging.
        await _until(lambda: _has_requests(sim))
        (record,) = await _requests(sim)
        assert (record["status_code"], record["task_id"]) == (None, None)
        assert record["faults"]["create"] == "hang"
        assert await _task_ids(sim) == []
        assert not pending.done()
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)


async def test_hang_ends_with_504_after_hang_seconds(start_sim: StartSim) -> None:
    client = await start_sim(replace(FAST, hang_seconds=0.05))
    response = await create(client, headers={"X-Sim-Create": "hang"})
    assert response.status_code == 504


async def test_accept_then_hang_creates_the_task_the_client_never_hears_of(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    pending = asyncio.create_task(
        create(sim, callback_url=CALLBACK_URL, prompt="x [sim create=accept_then_hang]")
    )
    try:
        await _until(lambda: _has_tasks(sim))
        (task_id,) = await _task_ids(sim)
        await wait_callback_state(sim, task_id)
        assert receiver.calls[0].body["id"] == task_id
        assert not pending.done()
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)


async def test_bad_fault_syntax_is_a_400_naming_its_source(sim: httpx.AsyncClient) -> None:
    by_prompt = await create(sim, prompt="x [sim duration=forever]")
    by_header = await create(sim, headers={"X-Sim-Outcome": "exploded"})
    assert (by_prompt.status_code, by_header.status_code) == (400, 400)
    assert by_prompt.json()["error"]["param"] == "prompt"
    assert "duration" in by_prompt.json()["error"]["message"]
    assert by_header.json()["error"]["param"] == "X-Sim-Outcome"
    assert await _task_ids(sim) == []
