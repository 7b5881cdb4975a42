"""Callback delivery: body, retries 1/2/4 (shrunk), give-up, timeout and the callback faults."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace

import httpx
import pytest

from tests.simulator.conftest import (
    CALLBACK_URL,
    FAST,
    Receiver,
    StartSim,
    control_view,
    create,
    create_ok,
    running_simulator,
    wait_callback_state,
)


async def test_final_task_is_posted_once_at_the_end(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    task_id = await create_ok(sim, callback_url=CALLBACK_URL, n=2)
    (call,) = await receiver.wait_for(1)
    assert call.path == "/callbacks/secret-token"
    polled = (await sim.get(f"/v1/tasks/{task_id}")).json()
    assert call.body == polled
    assert call.body["status"] == "completed"
    assert len(call.body["results"]) == 2
    view = await wait_callback_state(sim, task_id)
    assert view["callback"]["state"] == "delivered"
    (attempt,) = view["callback"]["attempts"]
    assert attempt["at"] >= view["end_at"]
    assert (attempt["kind"], attempt["attempt"], attempt["status_code"], attempt["delivered"]) == (
        "final",
        1,
        200,
        True,
    )
    await asyncio.sleep(0.1)
    assert len(receiver.calls) == 1


async def test_failed_task_callback_carries_the_error(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    prompt = "a fox [sim outcome=failed code=generation_timeout duration=0.05]"
    task_id = await create_ok(sim, callback_url=CALLBACK_URL, prompt=prompt)
    (call,) = await receiver.wait_for(1)
    assert call.body["id"] == task_id
    assert call.body["status"] == "failed"
    assert call.body["error"]["code"] == "generation_timeout"


async def test_no_callback_without_callback_url(sim: httpx.AsyncClient, receiver: Receiver) -> None:
    task_id = await create_ok(sim, prompt="a fox [sim duration=0]")
    await asyncio.sleep(0.1)
    assert receiver.calls == []
    assert (await control_view(sim, task_id))["callback"]["state"] == "none"


async def test_non_2xx_is_retried_after_1_2_4_shrunk(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503, 404]
    task_id = await create_ok(sim, callback_url=CALLBACK_URL)
    view = await wait_callback_state(sim, task_id)
    assert view["callback"]["state"] == "delivered"
    attempts = view["callback"]["attempts"]
    assert [(a["attempt"], a["status_code"], a["delivered"]) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 404, False),
        (4, 200, True),
    ]
    gaps = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(attempts)]
    for gap, delay in zip(gaps, FAST.retry_delays, strict=True):
        assert gap >= delay - 0.01
    assert len(receiver.calls) == 4


async def test_gives_up_after_three_retries(sim: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    task_id = await create_ok(sim, callback_url=CALLBACK_URL)
    view = await wait_callback_state(sim, task_id)
    assert view["callback"]["state"] == "failed"
    assert [a["attempt"] for a in view["callback"]["attempts"]] == [1, 2, 3, 4]
    await asyncio.sleep(0.3)
    assert len(receiver.calls) == 4


async def test_slow_receiver_times_out(start_sim: StartSim, receiver: Receiver) -> None:
    client = await start_sim(replace(FAST, callback_timeout=0.1, retry_delays=(0.01,)))
    receiver.delay = 1.0
    task_id = await create_ok(client, callback_url=CALLBACK_URL, prompt="x [sim duration=0]")
    view = await wait_callback_state(client, task_id)
    assert view["callback"]["state"] == "failed"
    assert [(a["error"], a["status_code"]) for a in view["callback"]["attempts"]] == [
        ("timeout", None),
        ("timeout", None),
    ]


async def test_unreachable_receiver_is_retried_then_given_up() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with running_simulator(FAST, httpx.MockTransport(refuse), time.time) as client:
        task_id = await create_ok(client, callback_url=CALLBACK_URL, prompt="x [sim duration=0]")
        view = await wait_callback_state(client, task_id)
    assert view["callback"]["state"] == "failed"
    errors = [a["error"] for a in view["callback"]["attempts"]]
    assert errors == ["ConnectError: connection refused"] * 4


async def test_lost_callback_is_never_sent(sim: httpx.AsyncClient, receiver: Receiver) -> None:
    task_id = await create_ok(sim, callback_url=CALLBACK_URL, headers={"X-Sim-Callback": "lost"})
    assert (await control_view(sim, task_id))["callback"]["state"] == "lost"
    await asyncio.sleep(0.4)
    assert (await sim.get(f"/v1/tasks/{task_id}")).json()["status"] == "completed"
    assert receiver.calls == []


@pytest.mark.parametrize(("spec", "copies"), [("duplicate:5", 5), ("duplicated:2", 2)])
async def test_duplicated_callback_is_sent_k_times(
    sim: httpx.AsyncClient, receiver: Receiver, spec: str, copies: int
) -> None:
    task_id = await create_ok(sim, callback_url=CALLBACK_URL, prompt=f"x [sim callback={spec}]")
    view = await wait_callback_state(sim, task_id)
    assert len(receiver.calls) == copies
    assert all(call.body == receiver.calls[0].body for call in receiver.calls)
    assert sorted(a["copy"] for a in view["callback"]["attempts"]) == list(range(copies))


async def test_duplicate_copies_are_retried_independently(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.statuses = [500]
    task_id = await create_ok(sim, callback_url=CALLBACK_URL, prompt="x [sim callback=dup:3]")
    view = await wait_callback_state(sim, task_id)
    assert view["callback"]["state"] == "delivered"
    assert len(view["callback"]["attempts"]) == 4


async def test_delayed_callback_comes_late(sim: httpx.AsyncClient, receiver: Receiver) -> None:
    prompt = "x [sim duration=0.05 callback=delayed:0.3]"
    task_id = await create_ok(sim, callback_url=CALLBACK_URL, prompt=prompt)
    await asyncio.sleep(0.15)
    assert (await sim.get(f"/v1/tasks/{task_id}")).json()["status"] == "completed"
    assert receiver.calls == []
    view = await wait_callback_state(sim, task_id)
    (attempt,) = view["callback"]["attempts"]
    assert attempt["at"] - view["end_at"] >= 0.29
    assert receiver.calls[0].body["status"] == "completed"


async def test_stale_callback_follows_the_final_one(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    task_id = await create_ok(
        sim, callback_url=CALLBACK_URL, headers={"X-Sim-Callback": "stale"}, n=2
    )
    final, stale = await receiver.wait_for(2)
    assert (final.body["id"], final.body["status"]) == (task_id, "completed")
    assert (stale.body["id"], stale.body["status"], stale.body["progress"]) == (
        task_id,
        "processing",
        50,
    )
    assert "results" not in stale.body
    view = await wait_callback_state(sim, task_id)
    assert [a["kind"] for a in view["callback"]["attempts"]] == ["final", "stale"]


async def test_early_callback_arrives_before_the_create_answer(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    response = await create(sim, callback_url=CALLBACK_URL, prompt="x [sim callback=early]")
    # Awaited inside the create request: no waiting needed here.
    (call,) = receiver.calls
    assert response.status_code == 200
    created = response.json()
    assert (created["status"], created["progress"]) == ("pending", 0)
    assert call.body["id"] == created["id"]
    assert call.body["status"] == "completed"


async def test_early_callback_waits_for_retries(sim: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.statuses = [500, 500]
    response = await create(
        sim, callback_url=CALLBACK_URL, headers={"X-Sim-Callback": "early", "X-Sim-Code": "x_y"}
    )
    assert response.status_code == 200
    assert [call.body["status"] for call in receiver.calls] == ["failed"] * 3
