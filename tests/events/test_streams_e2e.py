"""Streams and waits against real `serve` and simulator processes, on SQLite and PostgreSQL.

The service's re-check runs once a minute here: everything a test sees before that came through
change signals.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.events.sse import Stream, read
from tests.support import databases, processes

ALPHA = "e2e-alpha-key"
BEFORE_DEADLINE = 30  # seconds; the streams and waits here would otherwise last a minute


@dataclass(frozen=True)
class System:
    api_url: str
    simulator_url: str
    service: processes.Process


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """A simulator and a service with short heartbeats, on a fresh database of each kind."""
    tmp = tmp_path_factory.mktemp(f"streams-{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite+aiosqlite:///{tmp / 'jobs.db'}"
    else:
        base = os.environ.get("TEST_DATABASE_URL")
        if not base:
            pytest.skip("TEST_DATABASE_URL is not set")
        database_url = base + "_streams"
        databases.reset_postgres(database_url)
    sim_port, api_port = processes.free_port(), processes.free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    env = processes.service_env(
        database_url, simulator_url, api_port,
        STREAM_HEARTBEAT_SECONDS="0.2", WAIT_RECHECK_SECONDS="60",
    )  # fmt: skip
    processes.migrate(env)
    sim = processes.simulator(tmp, sim_port).start()
    service = processes.service(tmp, env, api_port)
    try:
        service.start()
        yield System(f"http://127.0.0.1:{api_port}", simulator_url, service)
    finally:
        service.terminate()
        sim.terminate()


@pytest.fixture
async def api(system: System) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {ALPHA}"}
    async with httpx.AsyncClient(base_url=system.api_url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture
async def sim(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.simulator_url, timeout=30) as client:
        yield client


async def until_processing(sim: httpx.AsyncClient, task_id: str) -> None:
    """Until the simulator's task reports `processing` (it starts `pending`)."""
    while True:
        if (await sim.get(f"/_sim/tasks/{task_id}")).json()["task"]["status"] == "processing":
            return
        await asyncio.sleep(0.1)


async def follow_a_job(
    api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> tuple[dict[str, Any], Stream]:
    """A job driven pending → processing → completed while its stream is read to its end."""
    job = (await api.post("/v1/jobs", json={"prompt": "a kite [sim duration=30]"})).json()
    task_id = job["evolink_task_id"]
    stream = Stream()
    async with api.stream("GET", f"/v1/jobs/{job['id']}/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read(response, stream)
        assert (await anext(events)).data["status"] == "pending"  # the first is the job now
        await until_processing(sim, task_id)
        await sim.post(f"/_sim/tasks/{task_id}/callback", json={})  # EvoLink reports progress
        while (await anext(events)).data["status"] != "processing":
            pass
        await sim.post(f"/_sim/tasks/{task_id}/complete")
        async for _ in events:  # to the end: the service closes the stream
            pass
    return job, stream


async def test_a_stream_shows_each_change_in_order_and_ends_after_the_last(
    api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    job, stream = await asyncio.wait_for(follow_a_job(api, sim), BEFORE_DEADLINE)

    assert stream.ended
    assert stream.statuses == ["pending", "processing", "completed"]
    ids = [int(event.id or "") for event in stream.events]
    assert ids == sorted(set(ids)), ids  # every event is newer than the one before
    assert all(event.event == "job" for event in stream.events)
    last = stream.events[-1].data
    assert last["id"] == job["id"] and last["archive_status"] == "archived"
    assert len(last["images"]) == 1  # the archived image's URL is in the last event
    assert stream.heartbeats > 0  # comments kept the connection alive between events
    # The last event is the job as GET returns it.
    assert last == (await api.get(f"/v1/jobs/{job['id']}")).json()


async def test_last_event_id_resumes_after_that_event(
    api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    job, stream = await asyncio.wait_for(follow_a_job(api, sim), BEFORE_DEADLINE)
    processing = next(e for e in stream.events if e.data["status"] == "processing")
    later = stream.events[stream.events.index(processing) + 1 :]

    resumed = Stream()
    headers = {"Last-Event-ID": processing.id or ""}
    async with api.stream("GET", f"/v1/jobs/{job['id']}/stream", headers=headers) as response:
        async for _ in read(response, resumed):
            pass
    assert resumed.ended
    # The job as it is now, newer than the event resumed after; nothing older, nothing twice.
    assert [e.id for e in resumed.events] == [later[-1].id]
    assert resumed.events[0].data == later[-1].data

    done = await api.get(
        f"/v1/jobs/{job['id']}/stream", headers={"Last-Event-ID": later[-1].id or ""}
    )
    assert done.status_code == 204  # an EventSource stops reconnecting


async def test_post_and_get_with_prefer_wait_answer_the_final_job(
    system: System, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    waited = await asyncio.wait_for(
        api.post("/v1/jobs", json={"prompt": "a fox [sim duration=1]"},
                 headers={"Prefer": "wait=60"}),
        BEFORE_DEADLINE,
    )  # fmt: skip
    assert waited.status_code == 202
    assert waited.headers["Preference-Applied"] == "wait=60"
    assert waited.json()["status"] == "completed"

    job = (await api.post("/v1/jobs", json={"prompt": "a fox [sim duration=30]"})).json()
    get = asyncio.create_task(api.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"}))
    await asyncio.wait_for(waiters(system, 1), BEFORE_DEADLINE)
    await sim.post(f"/_sim/tasks/{job['evolink_task_id']}/fail", json={"code": "service_error"})
    answer = await asyncio.wait_for(get, BEFORE_DEADLINE)
    assert answer.headers["Preference-Applied"] == "wait=60"
    assert answer.json()["status"] == "failed"


async def waiters(system: System, count: int) -> None:
    """Until the service reports `count` open waits and streams."""
    async with httpx.AsyncClient(base_url=system.api_url) as probe:
        while True:
            if f"evolink_jobs_waiters {count:.1f}" in (await probe.get("/metrics")).text:
                return
            await asyncio.sleep(0.1)


def requests_logged(service: processes.Process, since: int) -> list[tuple[str, str]]:
    """(method, route) of the job routes the service logged after the first `since` characters
    of its output."""
    seen = []
    for line in service.output()[since:].splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "request" and str(entry.get("route")).startswith("/v1/jobs/"):
            seen.append((entry["method"], entry["route"]))
    return seen


def console(system: System, *args: str) -> subprocess.Popen[str]:
    """`evolink-jobs ARGS` as caller alpha, running."""
    env = {k: v for k, v in os.environ.items() if k in processes.BASE_ENV_KEYS}
    env.update(EVOLINK_JOBS_URL=system.api_url, EVOLINK_JOBS_API_KEY=ALPHA)
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finished(command: subprocess.Popen[str]) -> dict[str, Any]:
    """The job a `--json` command printed, once it exited 0."""
    stdout, stderr = command.communicate(timeout=BEFORE_DEADLINE)
    assert command.returncode == 0, stderr
    job: dict[str, Any] = json.loads(stdout)
    return job


async def logged(system: System, since: int, count: int) -> list[tuple[str, str]]:
    """The job routes requested since `since`, once `count` have been logged (a request is
    logged when its answer has ended, a moment after the client saw its end)."""
    for _ in range(100):
        routes = requests_logged(system.service, since)
        if len(routes) >= count:
            return routes
        await asyncio.sleep(0.1)
    return requests_logged(system.service, since)


async def test_the_console_waits_on_the_stream_not_by_polling(
    system: System, sim: httpx.AsyncClient
) -> None:
    before = len(system.service.output())
    job = finished(console(system, "submit", "a heron [sim duration=2]", "--wait", "--json"))
    assert job["status"] == "completed"
    assert await logged(system, before, 1) == [("GET", "/v1/jobs/{job_id}/stream")]

    running = finished(console(system, "submit", "a heron [sim duration=30]", "--json"))
    before = len(system.service.output())
    show = console(system, "jobs", "show", running["id"], "--wait", "--json")
    await asyncio.wait_for(waiters(system, 1), BEFORE_DEADLINE)  # `show` follows the job
    await sim.post(f"/_sim/tasks/{running['evolink_task_id']}/complete")
    assert finished(show)["status"] == "completed"
    assert await logged(system, before, 2) == [
        ("GET", "/v1/jobs/{job_id}"),  # `show` itself
        ("GET", "/v1/jobs/{job_id}/stream"),  # then one stream, no polls
    ]
