"""Poll faults and the stricter simulator, through the real service: `serve` (with its worker) and
`simulator` processes over HTTP, on both databases.

Every test shows the same three things from the outside: the job still reaches the right end, the
caller never sees a 500 on the way, and EvoLink never receives a second create request.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ALPHA, FINAL, Stack, create_requests, events, sim_task
from tests.e2e.test_flows import submit, unique
from tests.support import databases, processes

# Two failing polls, then the task: the service has to come back twice.
POLL_FAULTS = [
    "poll=429:2 retry_after=none shape=string",
    "poll=500:2 shape=string",
    "poll=502:2 body=html",
    "poll=503:2 body=html",
    "poll=504:2 body=html",
    "poll=502:2 shape=integer",
    "poll=503:2 shape=string retry_after=1",
    "poll=504:2 body=empty",
    "poll=reset:2",
    "poll=not_json:2",
    "poll=hang",  # one poll: the service gives up on it after EVOLINK_TIMEOUT_SECONDS (2 s)
]


async def follow(api: httpx.AsyncClient, job_id: str, within: float = 60) -> dict[str, Any]:
    """Follow a job to a final status, checking that every read the caller makes succeeds."""
    async with asyncio.timeout(within):
        while True:
            response = await api.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] in FINAL:
                return job
            await asyncio.sleep(0.1)


async def polls(sim: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    """The polls the simulator received for a task, oldest first."""
    found: list[dict[str, Any]] = (await sim_task(sim, task_id))["polls"]
    return found


@pytest.mark.parametrize("directive", POLL_FAULTS)
async def test_failing_polls_are_retried_until_the_task_answers(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, directive: str
) -> None:
    marker = unique(f"a fox [sim {directive}]")
    job = await submit(api, marker)
    done = await follow(api, str(job["id"]))

    assert done["status"] == "completed", done
    assert len(done["results"]) == 1
    seen = await polls(sim, str(done["evolink_task_id"]))
    faulted = [p for p in seen if p["fault"] is not None]
    kind = directive.split()[0].removeprefix("poll=").split(":")[0]
    assert [p["fault"] for p in faulted] == [kind] * len(faulted) and faulted == seen[
        : len(faulted)
    ]
    assert len(faulted) == (1 if kind == "hang" else 2)
    assert seen[-1]["status_code"] == 200
    assert len(await create_requests(sim, marker)) == 1, "a create was sent twice"
    history = await events(api, str(job["id"]))
    assert [e["status"] for e in history if e["outcome"] == "applied"][-1] == "completed"


async def test_retry_after_on_a_poll_is_honoured(
    api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    # The service's own poll backoff here is 0.3-1 s; EvoLink asks for 2 s.
    job = await submit(api, unique("a fox [sim poll=429 retry_after=2 shape=integer]"))
    done = await follow(api, str(job["id"]))
    assert done["status"] == "completed"
    limited, after = (await polls(sim, str(done["evolink_task_id"])))[:2]
    assert (limited["status_code"], after["fault"]) == (429, None)
    # A lower bound only: a loaded machine makes the gap longer, never shorter.
    assert after["at"] - limited["at"] >= 2


async def test_poll_faults_added_on_the_control_api_to_a_running_task(
    api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    job = await submit(api, unique("a fox [sim duration=1.5]"))
    task_id = str(job["evolink_task_id"])
    fault = {"poll": "503", "count": 3, "body": "html"}
    assert (await sim.post(f"/_sim/tasks/{task_id}/poll-faults", json=fault)).status_code == 200
    done = await follow(api, str(job["id"]))
    assert done["status"] == "completed"
    seen = await polls(sim, task_id)
    assert [p["status_code"] for p in seen[:3]] == [503, 503, 503]
    assert seen[-1]["status_code"] == 200


@pytest.mark.parametrize(
    ("directive", "status"),
    [
        ("outcome=canceled", "cancelled"),
        ("outcome=cancelled", "cancelled"),
        # EvoLink may also report a cancellation as a failure: the job keeps its code.
        ("outcome=failed code=request_cancelled", "failed"),
    ],
)
async def test_every_spelling_of_a_cancellation(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, directive: str, status: str
) -> None:
    job = await submit(api, unique(f"a fox [sim {directive}]"))
    done = await follow(api, str(job["id"]))
    assert (done["status"], done["error"]["code"]) == (status, "request_cancelled")
    task = (await sim_task(sim, str(done["evolink_task_id"])))["task"]
    assert task["status"] == directive.split()[0].removeprefix("outcome=")


@pytest.mark.parametrize(
    "directive",
    [
        "create=503 body=html",
        "create=503 body=empty",
        "create=429 retry_after=none shape=string",
        "create=429 retry_after=1 body=html",
    ],
)
async def test_busy_evolink_in_any_shape_or_body_is_retried(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, directive: str
) -> None:
    # Queued, so that only the first create request fails.
    fault = dict(pair.split("=") for pair in directive.split())
    assert (await sim.post("/_sim/faults", json=fault)).status_code == 200
    marker = unique("a fox")
    job = await submit(api, marker)
    assert job["status"] == "queued"
    done = await follow(api, str(job["id"]))
    assert done["status"] == "completed"
    assert len(await create_requests(sim, marker)) == 2


@pytest.mark.parametrize("directive", ["create=502 body=html", "create=500 body=empty"])
async def test_a_gateway_page_after_sending_is_never_resent(
    api: httpx.AsyncClient, sim: httpx.AsyncClient, directive: str
) -> None:
    marker = unique(f"a fox [sim {directive}]")
    job = await submit(api, marker)
    assert job["status"] == "queued"
    done = await follow(api, str(job["id"]))
    assert (done["status"], done["error"]["code"]) == ("failed", "submission_unknown")
    assert len(await create_requests(sim, marker)) == 1


@pytest.mark.parametrize(
    ("directive", "status", "code"),
    [
        ("create=401 body=empty", 502, "gateway_misconfigured"),
        ("create=402 shape=integer", 503, "gateway_out_of_credits"),
        ("create=400 body=html", 422, "evolink_rejected"),
    ],
)
async def test_refusals_in_any_shape_or_body_fail_the_job_with_a_problem(
    api: httpx.AsyncClient, directive: str, status: int, code: str
) -> None:
    response = await api.post("/v1/jobs", json={"prompt": unique(f"a fox [sim {directive}]")})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    job = (await api.get(f"/v1/jobs/{problem['job_id']}")).json()
    assert job["status"] == "failed"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def strict_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A simulator as strict as EvoLink (no --allow-insecure-callbacks) and a service whose public
    URL is HTTPS, as in production: its callbacks never arrive here (`.invalid` never resolves)."""
    tmp = tmp_path_factory.mktemp(f"strict-{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp / 'strict.db'}"
    else:
        base = os.environ.get("TEST_DATABASE_URL")
        if not base:
            pytest.skip("TEST_DATABASE_URL is not set")
        database_url = base + "_e2e_strict"
        databases.reset_postgres(database_url)
    sim_port, api_port = processes.free_port(), processes.free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    env = processes.service_env(
        database_url,
        simulator_url,
        api_port,
        PUBLIC_BASE_URL=PUBLIC_HTTPS,
        ALLOW_INSECURE_CALLBACKS="false",
    )
    processes.migrate(env)
    args = ["simulator", "--host", "127.0.0.1", "--port", str(sim_port), "--task-seconds", "0.6"]
    sim_env = {k: v for k, v in os.environ.items() if k in processes.BASE_ENV_KEYS}
    sim = processes.Process(args, sim_env, tmp / "sim.log", f"{simulator_url}/_sim/health").start()
    service = processes.service(tmp, env, api_port)
    try:
        service.start()
        yield Stack(f"http://127.0.0.1:{api_port}", simulator_url, service, database_url)
    finally:
        service.terminate()
        sim.terminate()


PUBLIC_HTTPS = "https://jobs.evolink-jobs.invalid"


async def test_against_evolinks_callback_rules_jobs_finish_by_polling(
    strict_stack: Stack,
) -> None:
    headers = {"Authorization": f"Bearer {ALPHA}"}
    async with (
        httpx.AsyncClient(base_url=strict_stack.api_url, headers=headers, timeout=10) as api,
        httpx.AsyncClient(base_url=strict_stack.simulator_url, timeout=10) as sim,
    ):
        marker = unique("a fox [sim poll=503 body=html]")
        job = await submit(api, marker)
        done = await follow(api, str(job["id"]))
        assert done["status"] == "completed"
        (request,) = await create_requests(sim, marker)
        assert request["status_code"] == 200
        assert request["body"]["callback_url"].startswith(f"{PUBLIC_HTTPS}/callbacks/evolink/")
        history = await events(api, str(job["id"]))
        assert not [e for e in history if e["source"] == "callback"]
        assert history[-1]["source"] == "poll"
        # The simulator refuses what EvoLink refuses, from the same command line.
        refused = await sim.post(
            "/v1/images/generations",
            headers={"Authorization": "Bearer k"},
            json={"model": "gpt-4o-image", "prompt": "x", "callback_url": "http://127.0.0.1/cb"},
        )
        assert refused.status_code == 400
