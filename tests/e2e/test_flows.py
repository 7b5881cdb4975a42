"""Jobs all the way through real HTTP: the service, its worker and the simulator, on both databases.

Each simulator fault is chosen per job with a `[sim ...]` directive in the prompt, or queued on the
simulator's control API when it must hit only the first create request.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import Stack, create_requests, events, sim_task, wait_until


def unique(prompt: str) -> str:
    """A prompt nobody else used, so the simulator's records can be told apart."""
    return f"{prompt} #{uuid.uuid4().hex[:8]}"


async def submit(api: httpx.AsyncClient, prompt: str, **body: object) -> dict[str, object]:
    response = await api.post("/v1/jobs", json={"prompt": prompt, **body})
    assert response.status_code == 202, response.text
    job: dict[str, object] = response.json()
    return job


@pytest.mark.parametrize(
    ("n", "size", "aspect"), [(1, "1:1", 1.0), (2, "3:2", 1.5), (4, "2:3", 2 / 3)]
)
async def test_jobs_complete_with_real_images(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, stack: Stack, n: int, size: str, aspect: float
) -> None:
    job = await submit(api, unique("a lighthouse"), n=n, size=size, metadata={"n": n})
    assert job["status"] == "pending" and job["evolink_task_id"]
    done = await wait_until(api, str(job["id"]))

    assert done["status"] == "completed", done
    assert len(done["results"]) == n
    assert done["metadata"] == {"n": n}
    async with httpx.AsyncClient(timeout=10) as anyone:
        for url in done["results"]:
            image = await anyone.get(url)
            assert image.headers["content-type"] == "image/png"
            width, height = Image.open(io.BytesIO(image.content)).size
            assert width / height == pytest.approx(aspect, rel=0.02)

    record = await sim_task(sim, str(done["evolink_task_id"]))
    sent = record["request"]["body"]
    assert sent["model"] == "gpt-4o-image" and sent["n"] == n and sent["size"] == size
    callback = httpx.URL(sent["callback_url"])
    assert callback.host == "127.0.0.1" and callback.path.startswith(
        f"/callbacks/evolink/{job['id']}/"
    )
    assert record["callback"]["state"] == "delivered"
    history = [(e["source"], e["outcome"]) for e in await events(api, str(job["id"]))]
    assert history[0] == ("submit", "applied")
    assert ("callback", "deferred") in history and ("poll", "applied") in history


@pytest.mark.parametrize(
    ("directive", "status", "code"),
    [
        ("outcome=failed code=content_policy_violation", "failed", "content_policy_violation"),
        ("code=generation_timeout", "failed", "generation_timeout"),
        ("outcome=cancelled", "cancelled", "request_cancelled"),
    ],
)
async def test_failed_and_cancelled_tasks(
    api: httpx.AsyncClient, directive: str, status: str, code: str
) -> None:
    job = await submit(api, unique(f"a fox [sim {directive}]"))
    done = await wait_until(api, str(job["id"]))
    assert (done["status"], done["error"]["code"]) == (status, code)
    assert done["results"] == []


async def test_duration_is_what_evolink_estimates(api: httpx.AsyncClient) -> None:
    job = await submit(api, unique("a fox [sim duration=2]"))
    assert job["estimated_time"] == 2
    done = await wait_until(api, str(job["id"]))
    assert done["status"] == "completed"


async def test_lost_callback_is_recovered_by_polling(api: httpx.AsyncClient) -> None:
    job = await submit(api, unique("a fox [sim callback=lost]"))
    done = await wait_until(api, str(job["id"]))
    assert done["status"] == "completed"
    history = await events(api, str(job["id"]))
    assert not [e for e in history if e["source"] == "callback"]
    assert [e["status"] for e in history if e["outcome"] == "applied"][-1] == "completed"
    assert history[-1]["source"] == "poll"


async def test_duplicated_callbacks_make_one_transition(api: httpx.AsyncClient) -> None:
    job = await submit(api, unique("a fox [sim callback=duplicate:5]"))
    done = await wait_until(api, str(job["id"]))
    assert done["status"] == "completed"
    await wait_until_callbacks(api, str(job["id"]), 5)
    history = await events(api, str(job["id"]))
    completed = [e for e in history if e["status"] == "completed" and e["outcome"] == "applied"]
    assert len(completed) == 1


async def wait_until_callbacks(api: httpx.AsyncClient, job_id: str, count: int) -> None:
    for _ in range(100):
        if len([e for e in await events(api, job_id) if e["source"] == "callback"]) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} callbacks arrived")


async def test_delayed_callback(api: httpx.AsyncClient) -> None:
    job = await submit(api, unique("a fox [sim callback=delayed:1]"))
    done = await wait_until(api, str(job["id"]))
    assert done["status"] == "completed"


async def test_stale_callback_after_the_final_one_is_ignored(api: httpx.AsyncClient) -> None:
    job = await submit(api, unique("a fox [sim callback=stale]"))
    await wait_until(api, str(job["id"]))
    await wait_until_callbacks(api, str(job["id"]), 2)
    history = await events(api, str(job["id"]))
    [late] = [e for e in history if e["source"] == "callback" and e["status"] == "processing"]
    [final] = [e for e in history if e["status"] == "completed" and e["outcome"] == "applied"]
    # Before the final callback is confirmed the job is unfinished: "processing" is a hint too.
    assert late["outcome"] == ("stale" if final["id"] < late["id"] else "deferred")
    assert (await api.get(f"/v1/jobs/{job['id']}")).json()["status"] == "completed"


async def test_callback_that_overtakes_the_create_answer(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/jobs", json={"prompt": unique("a fox [sim callback=early]")})
    assert response.status_code == 202
    job = response.json()
    assert job["evolink_task_id"]
    done = await wait_until(api, job["id"])
    assert done["status"] == "completed"
    sources = [e["source"] for e in await events(api, job["id"])]
    assert sources.index("callback") < sources.index("submit")


@pytest.mark.parametrize(
    ("create", "status", "code"),
    [
        ("400", 422, "evolink_rejected"),
        ("401", 502, "gateway_misconfigured"),
        ("402", 503, "gateway_out_of_credits"),
    ],
)
async def test_refused_create_requests_fail_at_once(
    api: httpx.AsyncClient, create: str, status: int, code: str
) -> None:
    response = await api.post("/v1/jobs", json={"prompt": unique(f"a fox [sim create={create}]")})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    job = (await api.get(f"/v1/jobs/{problem['job_id']}")).json()
    assert job["status"] == "failed"


@pytest.mark.parametrize("fault", [{"create": "429", "retry_after": 1}, {"create": "503"}])
async def test_busy_or_unavailable_evolink_is_retried(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, fault: dict[str, object]
) -> None:
    assert (await sim.post("/_sim/faults", json=fault)).status_code in (200, 201)
    marker = unique("a fox")
    job = await submit(api, marker)
    assert job["status"] == "queued"
    done = await wait_until(api, str(job["id"]))
    assert done["status"] == "completed"
    assert len(await create_requests(sim, marker)) == 2


async def test_create_that_may_have_reached_evolink_is_bound_by_its_callback(
    api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    marker = unique("a fox [sim create=accept_then_500 duration=2]")
    job = await submit(api, marker)
    assert job["status"] == "queued"
    done = await wait_until(api, str(job["id"]))
    assert done["status"] == "completed" and done["evolink_task_id"]
    assert len(await create_requests(sim, marker)) == 1, "a possibly-received create was resent"


@pytest.mark.parametrize("create", ["500", "hang"])
async def test_create_with_no_answer_and_no_callback_fails_as_unknown(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, create: str
) -> None:
    marker = unique(f"a fox [sim create={create}]")
    job = await submit(api, marker)
    assert job["status"] == "queued"
    done = await wait_until(api, str(job["id"]), within=30)
    assert (done["status"], done["error"]["code"]) == ("failed", "submission_unknown")
    assert len(await create_requests(sim, marker)) == 1


async def test_a_forged_callback_cannot_complete_a_job(
    api: httpx.AsyncClient, stack: Stack
) -> None:
    job = await submit(api, unique("a fox [sim duration=5 callback=lost]"))
    record = await api.get(f"/v1/jobs/{job['id']}")
    assert record.status_code == 200
    # Someone who learned the callback URL posts a completed task with their own image.
    sim_url = stack.simulator_url
    async with httpx.AsyncClient(base_url=sim_url) as control:
        callback_url = (await sim_task(control, str(job["evolink_task_id"])))["request"]["body"][
            "callback_url"
        ]
    forged = {
        "id": job["evolink_task_id"],
        "status": "completed",
        "results": ["https://evil/x.png"],
    }
    async with httpx.AsyncClient() as attacker:
        answer = await attacker.post(callback_url, content=json.dumps(forged))
    assert answer.json() == {"outcome": "deferred"}
    done = await wait_until(api, str(job["id"]), within=30)
    assert done["status"] == "completed"
    assert "https://evil/x.png" not in done["results"]
