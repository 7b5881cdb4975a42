"""The /_sim/ control API: queued faults, inspection, ending tasks, resending callbacks, reset."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.simulator import create_simulator_app
from tests.simulator.conftest import (
    API_KEY,
    CALLBACK_URL,
    FAST,
    FakeClock,
    Receiver,
    StartSim,
    control_view,
    create,
    create_ok,
    wait_callback_state,
)

SLOW = replace(FAST, task_seconds=30.0)


async def test_queued_faults_apply_to_the_next_requests_in_order(sim: httpx.AsyncClient) -> None:
    first = await sim.post("/_sim/faults", json={"create": 503, "count": 2})
    second = await sim.post("/_sim/faults", json={"create": "429", "retry_after": 9})
    assert first.json() == {"queued": 2, "spec": {"create": "503"}}
    assert second.json()["queued"] == 3
    queue = (await sim.get("/_sim/faults")).json()["queue"]
    assert queue == [{"create": "503"}, {"create": "503"}, {"create": "429", "retry_after": 9}]
    statuses = [(await create(sim)).status_code for _ in range(4)]
    assert statuses == [503, 503, 429, 200]
    assert (await sim.get("/_sim/faults")).json()["queue"] == []


async def test_queued_fault_beats_headers_and_prompt(
    clocked_sim: httpx.AsyncClient, clock: FakeClock
) -> None:
    await clocked_sim.post("/_sim/faults", json={"outcome": "failed", "code": "quota_exceeded"})
    task_id = await create_ok(
        clocked_sim,
        prompt="x [sim outcome=completed duration=1]",
        headers={"X-Sim-Outcome": "cancelled", "X-Sim-Duration": "2"},
    )
    view = await control_view(clocked_sim, task_id)
    assert (view["faults"]["outcome"], view["faults"]["duration"]) == ("failed", 2.0)
    clock.advance(2)
    assert (await clocked_sim.get(f"/v1/tasks/{task_id}")).json()["error"]["code"] == (
        "quota_exceeded"
    )


async def test_headers_beat_the_prompt(sim: httpx.AsyncClient) -> None:
    response = await create(
        sim, prompt="x [sim create=500]", headers={"X-Sim-Create": "ok", "X-Sim-Duration": "0"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "spec", [{"create": 418}, {"colour": "blue"}, {"count": 0}, {"count": "2"}, [1]]
)
async def test_bad_fault_specs_are_422(sim: httpx.AsyncClient, spec: object) -> None:
    response = await sim.post("/_sim/faults", json=spec)
    assert response.status_code == 422
    assert (await sim.get("/_sim/faults")).json()["queue"] == []


async def test_fault_queue_can_be_cleared(sim: httpx.AsyncClient) -> None:
    await sim.post("/_sim/faults", json={"create": "500"})
    assert (await sim.delete("/_sim/faults")).json() == {"queue": []}
    assert (await create(sim)).status_code == 200


async def test_task_view_shows_exactly_what_the_client_sent(sim: httpx.AsyncClient) -> None:
    fields = {"prompt": "a fox [sim duration=5]", "size": "3:2", "callback_url": CALLBACK_URL}
    task_id = await create_ok(sim, headers={"X-Request-Id": "req-1"}, **fields)
    view = await control_view(sim, task_id)
    request = view["request"]
    assert request["body"] == {"model": "gpt-4o-image", **fields}
    headers = dict(request["headers"])
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["x-request-id"] == "req-1"
    assert headers["content-type"] == "application/json"
    assert (request["status_code"], request["task_id"]) == (200, task_id)
    assert view["status"] == "pending"
    assert view["task"]["id"] == task_id
    assert view["duration"] == 5.0
    assert view["callback"] == {"url": CALLBACK_URL, "state": "scheduled", "attempts": []}
    listed = (await sim.get("/_sim/tasks")).json()["tasks"]
    assert [task["id"] for task in listed] == [task_id]


async def test_rejected_requests_are_recorded_too(sim: httpx.AsyncClient) -> None:
    await sim.post("/v1/images/generations", content=b"{oops")
    (record,) = (await sim.get("/_sim/requests")).json()["requests"]
    assert (record["body"], record["status_code"], record["task_id"]) == ("{oops", 400, None)


@pytest.mark.parametrize(
    ("action", "payload", "status", "code"),
    [
        ("complete", None, "completed", None),
        ("fail", None, "failed", "service_error"),
        ("fail", {"code": "content_policy_violation"}, "failed", "content_policy_violation"),
        ("cancel", None, "cancelled", "request_cancelled"),
    ],
)
async def test_ending_a_task_now_calls_back_at_once(
    start_sim: StartSim,
    receiver: Receiver,
    action: str,
    payload: dict[str, str] | None,
    status: str,
    code: str | None,
) -> None:
    client = await start_sim(SLOW)
    task_id = await create_ok(client, callback_url=CALLBACK_URL)
    response = await client.post(f"/_sim/tasks/{task_id}/{action}", json=payload)
    assert response.status_code == 200
    assert response.json()["status"] == status
    (call,) = await receiver.wait_for(1)
    assert call.body["status"] == status
    assert call.body.get("error", {}).get("code") == code
    again = await client.post(f"/_sim/tasks/{task_id}/complete")
    assert again.status_code == 409


async def test_control_answers_404_for_unknown_tasks(sim: httpx.AsyncClient) -> None:
    for response in (
        await sim.get("/_sim/tasks/nope"),
        await sim.post("/_sim/tasks/nope/complete"),
        await sim.post("/_sim/tasks/nope/callback"),
    ):
        assert response.status_code == 404


async def test_callback_can_be_resent_on_demand(sim: httpx.AsyncClient, receiver: Receiver) -> None:
    task_id = await create_ok(sim, callback_url=CALLBACK_URL, prompt="x [sim duration=0]")
    await wait_callback_state(sim, task_id)
    resent = await sim.post(f"/_sim/tasks/{task_id}/callback")
    (attempt,) = resent.json()["attempts"]
    assert (attempt["kind"], attempt["status_code"]) == ("manual", 200)
    other = await sim.post(
        f"/_sim/tasks/{task_id}/callback",
        json={"url": "http://receiver.test/other", "retries": False},
    )
    assert other.json()["attempts"][0]["url"] == "http://receiver.test/other"
    assert [call.path for call in receiver.calls] == [
        "/callbacks/secret-token",
        "/callbacks/secret-token",
        "/other",
    ]
    assert receiver.calls[0].body == receiver.calls[1].body


async def test_resend_without_retries_makes_one_attempt(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    task_id = await create_ok(sim, prompt="x [sim duration=0]")
    missing = await sim.post(f"/_sim/tasks/{task_id}/callback")
    assert missing.status_code == 422  # no callback_url on the task and none given
    receiver.statuses = [500, 500]
    once = await sim.post(
        f"/_sim/tasks/{task_id}/callback", json={"url": CALLBACK_URL, "retries": False}
    )
    assert [a["status_code"] for a in once.json()["attempts"]] == [500]
    retried = await sim.post(f"/_sim/tasks/{task_id}/callback", json={"url": CALLBACK_URL})
    assert [a["status_code"] for a in retried.json()["attempts"]] == [500, 200]


async def test_reset_forgets_everything_and_cancels_callbacks(
    sim: httpx.AsyncClient, receiver: Receiver
) -> None:
    task_id = await create_ok(sim, callback_url=CALLBACK_URL, n=4)
    await sim.post("/_sim/faults", json={"create": "500"})
    assert (await sim.post("/_sim/reset")).json() == {"reset": True}
    assert (await sim.get("/_sim/tasks")).json() == {"tasks": []}
    assert (await sim.get("/_sim/requests")).json() == {"requests": []}
    assert (await sim.get("/_sim/faults")).json() == {"queue": []}
    assert (await sim.get(f"/v1/tasks/{task_id}")).status_code == 404
    await asyncio.sleep(0.3)
    assert receiver.calls == []
    credits = (await sim.get("/v1/credits")).json()["data"]["token"]
    assert credits["used_credits"] == 0


async def test_health(sim: httpx.AsyncClient) -> None:
    assert (await sim.get("/_sim/health")).json() == {"status": "ok", "simulator": True, "tasks": 0}


async def test_shutdown_cancels_pending_callbacks(receiver: Receiver) -> None:
    app = create_simulator_app(SLOW, callback_transport=receiver.transport)
    async with LifespanManager(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sim.test"
        ) as client:
            headers = {"Authorization": "Bearer k"}
            await create_ok(client, headers=headers, callback_url=CALLBACK_URL)
            receiver.statuses = [500] * 10
            await create_ok(
                client, headers=headers, callback_url=CALLBACK_URL, prompt="[sim duration=0]"
            )
            await receiver.wait_for(1)  # the second one is now between retries
        dispatcher = app.state.simulator.dispatcher
        jobs = [*dispatcher._scheduled.values()]
        assert len(jobs) == 2
    assert all(job.done() for job in jobs)
    await asyncio.sleep(0.3)
    assert len(receiver.calls) == 1
