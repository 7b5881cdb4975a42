"""Task objects over time, result files and credits (mostly on a fake clock)."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from PIL import Image

from app.simulator import SimulatorConfig
from tests.simulator.conftest import SIM_URL, FakeClock, StartSim, create, create_ok


async def test_create_answers_the_documented_task_object(
    clocked_sim: httpx.AsyncClient, clock: FakeClock
) -> None:
    response = await create(clocked_sim, n=2)
    assert response.status_code == 200
    task = response.json()
    assert re.fullmatch(rf"task-unified-{int(clock.now)}-[a-z0-9]{{8}}", task["id"])
    assert task == {
        "created": int(clock.now),
        "id": task["id"],
        "model": "gpt-4o-image-beta",
        "object": "image.generation.task",
        "progress": 0,
        "status": "pending",
        "task_info": {"can_cancel": True, "estimated_time": 10},
        "type": "image",
        "usage": {"billing_rule": "per_call", "credits_reserved": 5.0, "user_group": "default"},
    }


async def test_status_moves_with_the_clock(
    clocked_sim: httpx.AsyncClient, clock: FakeClock
) -> None:
    task_id = await create_ok(clocked_sim, size="2:3")
    seen = []
    for step in (0.5, 1.5, 3.0, 4.9):
        clock.advance(step)
        task = (await clocked_sim.get(f"/v1/tasks/{task_id}")).json()
        seen.append((task["status"], task["progress"], task["task_info"]["estimated_time"]))
    assert seen == [
        ("pending", 0, 10),
        ("processing", 20, 8),
        ("processing", 50, 5),
        ("processing", 99, 1),
    ]
    clock.advance(0.1)
    task = (await clocked_sim.get(f"/v1/tasks/{task_id}")).json()
    assert task["status"] == "completed"
    assert task["progress"] == 100
    assert task["task_info"] == {"can_cancel": False}
    assert task["results"] == [f"{SIM_URL}/files/{task_id}/0.png"]
    assert "error" not in task


@pytest.mark.parametrize(
    ("directive", "status", "code"),
    [
        (
            "[sim outcome=failed code=content_policy_violation]",
            "failed",
            "content_policy_violation",
        ),
        ("[sim code=model_unavailable]", "failed", "model_unavailable"),
        ("[sim outcome=failed]", "failed", "service_error"),
        ("[sim outcome=cancelled]", "cancelled", "request_cancelled"),
    ],
)
async def test_failed_and_cancelled_tasks_carry_a_task_error(
    clocked_sim: httpx.AsyncClient, clock: FakeClock, directive: str, status: str, code: str
) -> None:
    task_id = await create_ok(clocked_sim, prompt=f"a fox {directive}")
    clock.advance(10)
    task = (await clocked_sim.get(f"/v1/tasks/{task_id}")).json()
    assert (task["status"], task["progress"]) == (status, 0)
    assert task["error"]["code"] == code
    assert task["error"]["type"] == "task_error"
    assert task["error"]["message"]
    assert "results" not in task


async def test_duration_can_be_chosen_per_request(
    clocked_sim: httpx.AsyncClient, clock: FakeClock
) -> None:
    by_prompt = await create_ok(clocked_sim, prompt="a fox [sim duration=2]")
    by_header = await create_ok(clocked_sim, headers={"X-Sim-Duration": "30"})
    clock.advance(2)
    assert (await clocked_sim.get(f"/v1/tasks/{by_prompt}")).json()["status"] == "completed"
    assert (await clocked_sim.get(f"/v1/tasks/{by_header}")).json()["status"] == "pending"
    clock.advance(28)
    assert (await clocked_sim.get(f"/v1/tasks/{by_header}")).json()["status"] == "completed"


async def test_unknown_task_is_404(clocked_sim: httpx.AsyncClient) -> None:
    response = await clocked_sim.get("/v1/tasks/task-unified-1757156493-zzzzzzzz")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "resource_not_found",
            "message": "Task not found or expired",
            "type": "invalid_request_error",
        }
    }


async def test_tasks_expire_after_the_task_ttl(start_sim: StartSim, clock: FakeClock) -> None:
    client = await start_sim(SimulatorConfig(task_seconds=1, task_ttl_seconds=60), clock)
    task_id = await create_ok(client)
    clock.advance(61)
    assert (await client.get(f"/v1/tasks/{task_id}")).status_code == 200
    clock.advance(0.1)
    assert (await client.get(f"/v1/tasks/{task_id}")).status_code == 404


async def _image(client: httpx.AsyncClient, url: str) -> Image.Image:
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        (None, 1.0),
        ("1:1", 1.0),
        ("1024x1024", 1.0),
        ("2:3", 2 / 3),
        ("1024x1536", 2 / 3),
        ("3:2", 3 / 2),
        ("1536x1024", 3 / 2),
    ],
)
async def test_results_are_pngs_with_the_requested_aspect(
    clocked_sim: httpx.AsyncClient, clock: FakeClock, size: str | None, ratio: float
) -> None:
    task_id = await create_ok(clocked_sim, size=size)
    clock.advance(10)
    (url,) = (await clocked_sim.get(f"/v1/tasks/{task_id}")).json()["results"]
    image = await _image(clocked_sim, url)
    assert image.format == "PNG"
    assert max(image.size) == 256
    assert image.width / image.height == pytest.approx(ratio, abs=0.01)


async def test_images_differ_by_prompt_and_index_and_repeat_exactly(
    clocked_sim: httpx.AsyncClient, clock: FakeClock
) -> None:
    fox = await create_ok(clocked_sim, prompt="a fox", n=2)
    owl = await create_ok(clocked_sim, prompt="an owl")
    fox_again = await create_ok(clocked_sim, prompt="a fox")
    clock.advance(10)
    images = {
        name: (await clocked_sim.get(f"/files/{task_id}/{index}.png")).content
        for name, task_id, index in [
            ("fox0", fox, 0),
            ("fox1", fox, 1),
            ("owl0", owl, 0),
            ("fox_again0", fox_again, 0),
        ]
    }
    assert images["fox0"] == images["fox_again0"]
    assert len({images["fox0"], images["fox1"], images["owl0"]}) == 3


async def test_files_exist_only_while_completed_and_within_the_ttl(
    start_sim: StartSim, clock: FakeClock
) -> None:
    client = await start_sim(SimulatorConfig(task_seconds=5, result_ttl_seconds=100), clock)
    task_id = await create_ok(client, n=2)
    failed_id = await create_ok(client, prompt="x [sim outcome=failed]")
    url = f"/files/{task_id}/1.png"
    assert (await client.get(url)).status_code == 404  # not finished yet
    clock.advance(5)
    assert (await client.get(url)).status_code == 200
    assert (await client.get(f"/files/{task_id}/2.png")).status_code == 404
    assert (await client.get(f"/files/{failed_id}/0.png")).status_code == 404
    assert (await client.get("/files/task-unified-1-nothing0/0.png")).status_code == 404
    clock.advance(100)
    assert (await client.get(url)).status_code == 200
    clock.advance(0.1)
    assert (await client.get(url)).status_code == 404


async def test_public_base_url_is_used_for_results(start_sim: StartSim, clock: FakeClock) -> None:
    config = SimulatorConfig(task_seconds=1, public_base_url="https://files.sim.example/")
    client = await start_sim(config, clock)
    task_id = await create_ok(client)
    clock.advance(1)
    results = (await client.get(f"/v1/tasks/{task_id}")).json()["results"]
    assert results == [f"https://files.sim.example/files/{task_id}/0.png"]


async def _credits(client: httpx.AsyncClient) -> tuple[float, float]:
    response = await client.get("/v1/credits")
    assert response.status_code == 200
    data = response.json()
    assert (data["success"], data["message"]) == (True, "")
    token, user = data["data"]["token"], data["data"]["user"]
    assert token["unlimited_credits"] is False
    assert (user["remaining_credits"], user["used_credits"]) == (
        token["remaining_credits"],
        token["used_credits"],
    )
    return token["remaining_credits"], token["used_credits"]


async def test_credits_are_reserved_at_creation_and_settled_at_the_end(
    start_sim: StartSim, clock: FakeClock
) -> None:
    client = await start_sim(SimulatorConfig(task_seconds=10, initial_credits=100), clock)
    await create_ok(client, n=4)
    assert await _credits(client) == (90.0, 0.0)  # 2.5 per image held from the start
    await create_ok(client, prompt="x [sim outcome=failed]", n=2)
    await create_ok(client, prompt="x [sim outcome=cancelled]")
    await create_ok(client, prompt="x [sim duration=20]")
    assert await _credits(client) == (80.0, 0.0)
    clock.advance(10)  # the completed task is charged, the failed and cancelled ones released
    assert await _credits(client) == (87.5, 10.0)
    clock.advance(10)
    assert await _credits(client) == (87.5, 12.5)


async def test_insufficient_quota_counts_running_reservations(
    start_sim: StartSim, clock: FakeClock
) -> None:
    client = await start_sim(SimulatorConfig(task_seconds=10, initial_credits=7.5), clock)
    await create_ok(client, n=2)
    await create_ok(client, prompt="x [sim outcome=failed]")  # exactly what is left
    refused = await create(client)
    assert refused.status_code == 402
    assert refused.json() == {
        "error": {
            "code": "insufficient_quota",
            "message": "Insufficient quota. Please top up your account.",
            "type": "insufficient_quota",
        }
    }
    clock.advance(10)  # 5 charged, the failure refunded: 2.5 left
    await create_ok(client)
    assert (await create(client)).status_code == 402
