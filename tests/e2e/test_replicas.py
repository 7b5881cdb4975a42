"""Several real replicas on one PostgreSQL: no job submitted twice, crashed claims taken over,
duplicate callbacks on different replicas making one transition, and clean SIGTERM shutdowns."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.e2e.conftest import ALPHA, events, wait_until
from tests.support import databases, processes

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="replicas need PostgreSQL (TEST_DATABASE_URL)"
)


class Cluster:
    """A simulator and any number of `serve` and `worker` processes sharing one database."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        self.tmp = tmp
        self.database_url = database_url
        self.sim_port = processes.free_port()
        self.simulator_url = f"http://127.0.0.1:{self.sim_port}"
        self.members: list[processes.Process] = []

    def env(self, port: int, **extra: str) -> dict[str, str]:
        return processes.service_env(self.database_url, self.simulator_url, port, **extra)

    def start_simulator(self, task_seconds: float = 0.6) -> None:
        self.members.append(processes.simulator(self.tmp, self.sim_port, task_seconds).start())

    def serve(self, *args: str, **extra: str) -> str:
        port = processes.free_port()
        member = processes.service(self.tmp, self.env(port, **extra), port, *args)
        self.members.append(member.start())
        return f"http://127.0.0.1:{port}"

    def worker(self, name: str, **extra: str) -> processes.Process:
        member = processes.worker(self.tmp, self.env(processes.free_port(), **extra), name)
        self.members.append(member.start())
        return member

    def stop(self) -> None:
        for member in reversed(self.members):
            if member.popen is not None and member.popen.poll() is None:
                member.kill()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    base = os.environ["TEST_DATABASE_URL"]
    url = make_url(base).set(database="evolink_jobs_replicas").render_as_string(hide_password=False)
    databases.reset_postgres(url)
    databases.migrate(url)
    running = Cluster(tmp_path, url)
    running.start_simulator()
    try:
        yield running
    finally:
        running.stop()


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ALPHA}"}, timeout=20)


async def accepted_creates(simulator_url: str) -> dict[str, int]:
    """How many create requests EvoLink accepted, per job (read from the callback URL)."""
    async with httpx.AsyncClient(base_url=simulator_url) as sim:
        requests: list[dict[str, Any]] = (await sim.get("/_sim/requests")).json()["requests"]
    counts: dict[str, int] = {}
    for request in requests:
        if request["status_code"] == 200:
            job_id = request["body"]["callback_url"].split("/")[-2]
            counts[job_id] = counts.get(job_id, 0) + 1
    return counts


async def test_duplicate_callbacks_on_different_replicas_make_one_transition(
    cluster: Cluster,
) -> None:
    replicas = [cluster.serve(VERIFY_CALLBACKS="false") for _ in range(3)]
    async with client(replicas[0]) as api:
        job = (
            await api.post("/v1/jobs", json={"prompt": "a fox [sim duration=60 callback=lost]"})
        ).json()
    async with httpx.AsyncClient(base_url=cluster.simulator_url) as sim:
        record = (await sim.get(f"/_sim/tasks/{job['evolink_task_id']}")).json()
    path = httpx.URL(record["request"]["body"]["callback_url"]).path
    body = {"id": job["evolink_task_id"], "status": "completed", "results": ["https://r/1.png"]}

    async with httpx.AsyncClient(timeout=20) as evolink:
        answers = await asyncio.gather(
            *(evolink.post(url + path, json=body) for url in replicas for _ in range(7))
        )
    outcomes = sorted(answer.json()["outcome"] for answer in answers)
    assert outcomes == ["applied"] + ["duplicate"] * 20
    async with client(replicas[1]) as api:
        stored = (await api.get(f"/v1/jobs/{job['id']}")).json()
        assert stored["status"] == "completed" and stored["results"] == ["https://r/1.png"]
        recorded = [e["outcome"] for e in await events(api, job["id"]) if e["source"] == "callback"]
    assert sorted(recorded) == outcomes


async def test_a_burst_spread_over_replicas_is_submitted_exactly_once(cluster: Cluster) -> None:
    replicas = [cluster.serve(SUBMIT_CONCURRENCY="2") for _ in range(3)]
    cluster.worker("extra", SUBMIT_CONCURRENCY="2")
    async with httpx.AsyncClient(base_url=cluster.simulator_url) as sim:
        # The first ten create requests find EvoLink unavailable: those jobs queue and are
        # retried by whichever replica's worker claims them.
        await sim.post("/_sim/faults", json={"create": "503", "count": 10})

    apis = [client(url) for url in replicas]
    try:
        targets = itertools.cycle(apis)
        answers = await asyncio.gather(
            *(next(targets).post("/v1/jobs", json={"prompt": f"burst {i}"}) for i in range(36))
        )
        assert {a.status_code for a in answers} == {202}
        jobs = [a.json() for a in answers]
        assert any(j["status"] == "queued" for j in jobs)
        finished = await asyncio.gather(*(wait_until(apis[0], j["id"], within=60) for j in jobs))
    finally:
        await asyncio.gather(*(api.aclose() for api in apis))

    assert {j["status"] for j in finished} == {"completed"}
    counts = await accepted_creates(cluster.simulator_url)
    assert {j["id"]: counts.get(j["id"]) for j in jobs} == {j["id"]: 1 for j in jobs}


async def test_a_killed_worker_s_claims_are_taken_over_and_never_resent(cluster: Cluster) -> None:
    api_url = cluster.serve("--no-worker")
    lease = {
        "CLAIM_LEASE_SECONDS": "2",
        "ARCHIVE_DOWNLOAD_TIMEOUT_SECONDS": "1",
        "SUBMIT_CONCURRENCY": "1",
        "EVOLINK_TIMEOUT_SECONDS": "30",
    }
    async with httpx.AsyncClient(base_url=cluster.simulator_url) as sim:
        # EvoLink is "unavailable" for the API's three create requests, so the jobs queue; then
        # the first background attempt hangs, and its worker is killed while it waits.
        await sim.post("/_sim/faults", json={"create": "503", "count": 3})
        await sim.post("/_sim/faults", json={"create": "hang", "count": 1})
        async with client(api_url) as api:
            queued = [
                (await api.post("/v1/jobs", json={"prompt": f"q{i}"})).json() for i in range(3)
            ]
            assert {j["status"] for j in queued} == {"queued"}

            first = cluster.worker("first", **lease)
            hanging = await job_sent_with(sim, "hang")
            first.kill()

            cluster.worker("second", **lease)
            done = {j["id"]: await wait_until(api, j["id"], within=60) for j in queued}
        requests = (await sim.get("/_sim/requests")).json()["requests"]

    assert (done[hanging]["status"], done[hanging]["error"]["code"]) == (
        "failed",
        "submission_unknown",
    )
    assert {done[j]["status"] for j in done if j != hanging} == {"completed"}
    resent = [
        r for r in requests if hanging in r["body"]["callback_url"] and r["status_code"] != 503
    ]
    assert len(resent) == 1, "a create request that may have reached EvoLink was sent again"


async def job_sent_with(sim: httpx.AsyncClient, create_fault: str) -> str:
    """The job whose create request met `create_fault` at the simulator."""
    for _ in range(300):
        for request in (await sim.get("/_sim/requests")).json()["requests"]:
            if (request.get("faults") or {}).get("create") == create_fault:
                job_id: str = request["body"]["callback_url"].split("/")[-2]
                return job_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"no create request met {create_fault}")


async def test_sigterm_finishes_requests_in_flight_and_exits(cluster: Cluster) -> None:
    api_url = cluster.serve(SHUTDOWN_TIMEOUT_SECONDS="5", EVOLINK_TIMEOUT_SECONDS="2")
    server = cluster.members[-1]
    async with client(api_url) as api:
        in_flight = asyncio.create_task(
            api.post("/v1/jobs", json={"prompt": f"slow {uuid.uuid4().hex} [sim create=hang]"})
        )
        await asyncio.sleep(1.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        stopping = loop.run_in_executor(None, server.terminate, 30)
        answer = await in_flight
        status = await stopping
        elapsed = loop.time() - started

    # The request in flight was answered (EvoLink's silence makes the job "unknown", not lost).
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    assert status in (0, -15), server.output()
    assert elapsed < 12, f"shutdown took {elapsed:.1f} s"
    assert '"event": "worker_stopped"' in server.output()
    job = await stored_job(cluster.database_url, answer.json()["id"])
    assert (job["submit_state"], job["claimed_by"]) == ("unknown", None)


async def stored_job(database_url: str, job_id: str) -> dict[str, Any]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT submit_state, claimed_by FROM jobs WHERE id = :id"),
                    {"id": uuid.UUID(job_id)},
                )
            ).one()
    finally:
        await engine.dispose()
    return dict(row._mapping)
