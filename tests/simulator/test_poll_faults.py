"""Polls (`GET /v1/tasks/{id}`) that fail as EvoLink and its gateways can: per task, or queued."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.simulator import server
from tests.simulator.conftest import FAST, StartSim, control_view, create, create_ok
from tests.simulator.test_server import serving

MALFORMED_IDS = [
    "42",
    "task-unified-abc-defghijk",
    "TASK-UNIFIED-1757156493-IMCG5ZQT",
    "task-unified-1757156493-imcg5zqt;drop",
    "..%2F..%2F_sim%2Ffaults",
    "a/b",
]


async def poll(client: httpx.AsyncClient, task_id: str) -> httpx.Response:
    return await client.get(f"/v1/tasks/{task_id}")


async def _until_polled(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    # The deadline only stops a broken test; a loaded machine never makes a passing one fail.
    async with asyncio.timeout(30):
        while True:
            polls: list[dict[str, Any]] = (await control_view(client, task_id))["polls"]
            if polls:
                return polls
            await asyncio.sleep(0.01)


async def test_a_tasks_poll_fault_fails_the_next_k_polls_then_answers(
    sim: httpx.AsyncClient,
) -> None:
    task_id = await create_ok(sim, prompt="a fox [sim poll=503:2 shape=integer retry_after=4]")
    answers = [await poll(sim, task_id) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["retry-after"] == "4"
    assert answers[0].json()["error"]["code"] == 503
    assert answers[2].json()["id"] == task_id
    view = await control_view(sim, task_id)
    assert [(p["fault"], p["status_code"]) for p in view["polls"]] == [
        ("503", 503),
        ("503", 503),
        (None, 200),
    ]
    assert view["poll_faults"] == []
    assert view["faults"]["poll"] == {"kind": "503", "count": 2}


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
@pytest.mark.parametrize(("shape", "typed"), [("string", str), ("integer", int)])
async def test_every_poll_status_in_both_shapes(
    sim: httpx.AsyncClient, status: int, shape: str, typed: type
) -> None:
    task_id = await create_ok(sim, headers={"X-Sim-Poll": str(status), "X-Sim-Shape": shape})
    answer = await poll(sim, task_id)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert isinstance(error["code"], typed) and not isinstance(error["code"], bool)
    assert isinstance(error["message"], str) and isinstance(error["type"], str)


async def test_poll_429_with_and_without_retry_after(sim: httpx.AsyncClient) -> None:
    with_header = await create_ok(sim, prompt="x [sim poll=429 retry_after=3]")
    default = await create_ok(sim, prompt="x [sim poll=429]")
    without = await create_ok(sim, prompt="x [sim poll=429 retry_after=none]")
    assert (await poll(sim, with_header)).headers["retry-after"] == "3"
    assert (await poll(sim, default)).headers["retry-after"] == "2"
    absent = await poll(sim, without)
    assert absent.status_code == 429
    assert "retry-after" not in absent.headers


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_pages_and_empty_bodies(sim: httpx.AsyncClient, status: int) -> None:
    task_id = await create_ok(sim, prompt=f"x [sim poll={status} body=html]")
    page = await poll(sim, task_id)
    assert (page.status_code, page.headers["content-type"][:9]) == (status, "text/html")
    assert page.text.startswith("<html>")
    await sim.post(f"/_sim/tasks/{task_id}/poll-faults", json={"poll": status, "body": "empty"})
    empty = await poll(sim, task_id)
    assert (empty.status_code, empty.content) == (status, b"")


async def test_not_json_is_a_200_that_is_not_a_task(sim: httpx.AsyncClient) -> None:
    task_id = await create_ok(sim, prompt="x [sim poll=not_json]")
    answer = await poll(sim, task_id)
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()
    assert (await poll(sim, task_id)).json()["id"] == task_id


async def test_hang_leaves_the_poll_unanswered(sim: httpx.AsyncClient) -> None:
    task_id = await create_ok(sim, prompt="x [sim poll=hang]")
    pending = asyncio.create_task(poll(sim, task_id))
    try:
        # The fault is taken and the record made with no await before the wait: once the record
        # is visible, the poll is hanging.
        (record,) = await _until_polled(sim, task_id)
        assert (record["fault"], record["status_code"]) == ("hang", None)
        assert not pending.done()
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    assert (await poll(sim, task_id)).status_code == 200


async def test_reset_drops_the_connection_mid_answer() -> None:
    async with (
        serving(server.build_server(FAST, "127.0.0.1", 0)) as sim_url,
        httpx.AsyncClient(base_url=sim_url, headers={"Authorization": "Bearer k"}) as client,
    ):
        task_id = await create_ok(client, prompt="x [sim poll=reset]")
        with pytest.raises(httpx.RemoteProtocolError):
            await poll(client, task_id)
        assert (await poll(client, task_id)).json()["id"] == task_id


async def test_queued_poll_faults_hit_the_next_polls_of_any_task(sim: httpx.AsyncClient) -> None:
    first = await create_ok(sim, prompt="x [sim poll=500]")
    second = await create_ok(sim)
    queued = await sim.post("/_sim/poll-faults", json={"poll": "502", "count": 2})
    assert queued.json()["queued"] == 2
    assert (await sim.get("/_sim/poll-faults")).json()["queue"][0]["kind"] == "502"
    # The queue comes first; the task's own fault waits for the poll after.
    statuses = [(await poll(sim, task_id)).status_code for task_id in (second, first, first)]
    assert statuses == [502, 502, 500]
    assert (await poll(sim, second)).status_code == 200
    unknown = "task-unified-1757156493-zzzzzzzz"
    await sim.post("/_sim/poll-faults", json={"poll": "hang"})
    await sim.delete("/_sim/poll-faults")
    assert (await poll(sim, unknown)).status_code == 404
    polls = (await sim.get("/_sim/polls")).json()["polls"]
    assert [p["task_id"] for p in polls] == [second, first, first, second, unknown]


@pytest.mark.parametrize(
    "spec",
    [{}, {"poll": "418"}, {"poll": "503", "outcome": "failed"}, {"poll": "503", "count": 0}],
)
async def test_bad_poll_fault_specs_are_422(sim: httpx.AsyncClient, spec: object) -> None:
    task_id = await create_ok(sim)
    assert (await sim.post("/_sim/poll-faults", json=spec)).status_code == 422
    assert (await sim.post(f"/_sim/tasks/{task_id}/poll-faults", json=spec)).status_code == 422


async def test_reset_forgets_queued_poll_faults_and_polls(sim: httpx.AsyncClient) -> None:
    await sim.post("/_sim/poll-faults", json={"poll": "503"})
    await poll(sim, "task-unified-1757156493-zzzzzzzz")
    await sim.post("/_sim/poll-faults", json={"poll": "503"})
    await sim.post("/_sim/reset")
    assert (await sim.get("/_sim/poll-faults")).json() == {"queue": []}
    assert (await sim.get("/_sim/polls")).json() == {"polls": []}


@pytest.mark.parametrize("task_id", MALFORMED_IDS)
async def test_malformed_task_ids_are_400_invalid_task_id(
    sim: httpx.AsyncClient, task_id: str
) -> None:
    answer = await poll(sim, task_id)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_task_id"
    assert answer.json()["error"]["type"] == "invalid_request_error"


async def test_the_key_is_checked_before_the_id(sim: httpx.AsyncClient) -> None:
    sim.headers.pop("Authorization")
    assert (await poll(sim, "42")).status_code == 401


@pytest.mark.parametrize("status", ["canceled", "failed", "cancelled"])
async def test_a_cancellation_can_be_reported_three_ways(start_sim: StartSim, status: str) -> None:
    client = await start_sim()
    task_id = await create_ok(client, prompt="x [sim duration=60]")
    ended = await client.post(f"/_sim/tasks/{task_id}/cancel", json={"status": status})
    assert ended.status_code == 200
    task = (await poll(client, task_id)).json()
    assert (task["status"], task["error"]["code"]) == (status, "request_cancelled")


async def test_canceled_spelling_from_a_directive(sim: httpx.AsyncClient) -> None:
    response = await create(sim, prompt="x [sim outcome=canceled duration=0]")
    task = (await poll(sim, response.json()["id"])).json()
    assert (task["status"], task["error"]["code"]) == ("canceled", "request_cancelled")
