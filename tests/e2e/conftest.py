"""The whole system over real HTTP: `evolink-jobs serve` and `evolink-jobs simulator` processes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import databases, processes

ALPHA = "e2e-alpha-key"
FINAL = {"completed", "failed", "cancelled"}


@dataclass(frozen=True)
class Stack:
    """Where the running system answers."""

    api_url: str
    simulator_url: str
    service: processes.Process
    database_url: str


def e2e_database(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'e2e.db'}"
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = base + "_e2e"  # beside the suite's own database, never shared between suites
    databases.reset_postgres(url)
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A simulator and a service (with its worker) on a fresh database of each kind."""
    tmp = tmp_path_factory.mktemp(f"e2e-{request.param}")
    database_url = e2e_database(request.param, tmp)
    sim_port, api_port = processes.free_port(), processes.free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    env = processes.service_env(database_url, simulator_url, api_port)
    processes.migrate(env)
    sim = processes.simulator(tmp, sim_port).start()
    service = processes.service(tmp, env, api_port)
    try:
        service.start()
        yield Stack(f"http://127.0.0.1:{api_port}", simulator_url, service, database_url)
    finally:
        service.terminate()
        sim.terminate()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """Caller alpha, over real HTTP."""
    headers = {"Authorization": f"Bearer {ALPHA}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
async def sim(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's control API; queued faults cleared before each test."""
    async with httpx.AsyncClient(base_url=stack.simulator_url, timeout=10) as client:
        await client.delete("/_sim/faults")
        await client.delete("/_sim/poll-faults")
        yield client


async def wait_until(
    api: httpx.AsyncClient, job_id: str, statuses: set[str] = FINAL, within: float = 30
) -> dict[str, Any]:
    """Follow a job until its status is one of `statuses`."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        job: dict[str, Any] = (await api.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job stuck: {job}"
        await asyncio.sleep(0.1)


async def events(api: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (await api.get(f"/v1/jobs/{job_id}/events")).json()["data"]
    return data


async def sim_task(sim: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    record: dict[str, Any] = (await sim.get(f"/_sim/tasks/{task_id}")).json()
    return record


async def create_requests(sim: httpx.AsyncClient, marker: str) -> list[dict[str, Any]]:
    """Create requests the simulator received whose prompt contains `marker`."""
    requests: list[dict[str, Any]] = (await sim.get("/_sim/requests")).json()
    if isinstance(requests, dict):
        requests = requests.get("requests", requests.get("data", []))
    return [r for r in requests if marker in str(r)]
