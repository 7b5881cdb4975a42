"""Waiters on one replica woken by changes applied on another, through PostgreSQL's
LISTEN/NOTIFY, also after the database restarted.

Every replica here re-checks its waiters once a minute only, and every wait asks for a minute:
an answer before BEFORE_DEADLINE came through a change signal.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy import make_url

from app.events.listener import APPLICATION_NAME
from tests.events.sse import Stream, read
from tests.support import databases, pg_cluster, processes

ALPHA = "e2e-alpha-key"
BEFORE_DEADLINE = 30
HEARTBEAT_SECONDS = 0.5
QUIET = {"WAIT_RECHECK_SECONDS": "60", "VERIFY_CALLBACKS": "false", "ARCHIVE_URL": "off"}


class Replicas:
    """A simulator and `serve` processes sharing one PostgreSQL database."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        self.tmp = tmp
        self.database_url = database_url
        port = processes.free_port()
        self.simulator_url = f"http://127.0.0.1:{port}"
        self.members = [processes.simulator(tmp, port).start()]

    def serve(self) -> str:
        port = processes.free_port()
        env = processes.service_env(
            self.database_url,
            self.simulator_url,
            port,
            STREAM_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
            **QUIET,
        )
        self.members.append(processes.service(self.tmp, env, port).start())
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for member in reversed(self.members):
            if member.popen is not None and member.popen.poll() is None:
                member.kill()


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ALPHA}"}, timeout=90)


async def long_job(api: httpx.AsyncClient, simulator_url: str) -> tuple[dict[str, Any], str]:
    """A job whose task runs a minute and never calls back; its callback URL's path."""
    job = await api.post("/v1/jobs", json={"prompt": "a gull [sim duration=60 callback=lost]"})
    assert job.status_code == 202, job.text
    async with httpx.AsyncClient(base_url=simulator_url) as sim:
        record = (await sim.get(f"/_sim/tasks/{job.json()['evolink_task_id']}")).json()
    return job.json(), httpx.URL(record["request"]["body"]["callback_url"]).path


async def call_back(replica: str, path: str, task_id: str) -> None:
    """EvoLink's final callback, delivered to `replica` (retried while its database is away)."""
    body = {"id": task_id, "status": "completed", "results": ["https://images.example/1.png"]}
    async with httpx.AsyncClient(base_url=replica, timeout=20) as evolink:
        for _ in range(100):
            answer = await evolink.post(path, json=body)
            if answer.status_code == 200:
                assert answer.json()["outcome"] == "applied"
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"the callback was never accepted: {answer.status_code}")


async def waiting_on(replica: str) -> None:
    """Until `replica` holds one waiter."""
    async with httpx.AsyncClient(base_url=replica) as probe:
        while True:
            if "evolink_jobs_waiters 1.0" in (await probe.get("/metrics")).text:
                return
            await asyncio.sleep(0.05)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("replicas need PostgreSQL (TEST_DATABASE_URL)")
    base_url = make_url(base)
    url = base_url.set(database=f"{base_url.database}_replicas").render_as_string(
        hide_password=False
    )
    databases.reset_postgres(url)
    databases.migrate(url)
    running = Replicas(tmp_path, url)
    try:
        yield running
    finally:
        running.stop()


async def test_prefer_wait_returns_when_the_callback_is_applied_on_another_replica(
    replicas: Replicas,
) -> None:
    a, b = replicas.serve(), replicas.serve()
    async with client(a) as api:
        job, path = await long_job(api, replicas.simulator_url)
        waited = asyncio.create_task(
            api.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"})
        )
        await asyncio.wait_for(waiting_on(a), BEFORE_DEADLINE)
        await call_back(b, path, job["evolink_task_id"])
        answer = await asyncio.wait_for(waited, BEFORE_DEADLINE)
    assert answer.status_code == 200
    assert answer.headers["Preference-Applied"] == "wait=60"
    assert answer.json()["status"] == "completed"
    assert answer.json()["results"] == ["https://images.example/1.png"]


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[pg_cluster.PostgresCluster]:
    if not pg_cluster.available():
        pytest.skip(f"initdb and pg_ctl are not in {pg_cluster.PG_BIN}")
    server = pg_cluster.PostgresCluster()
    try:
        server.init()
        server.start()
        databases.reset_postgres(server.url())
        databases.migrate(server.url())
        yield server
    finally:
        server.destroy()


async def listeners(cluster: pg_cluster.PostgresCluster) -> int:
    """How many replicas' listening connections the server has."""
    try:
        admin = await cluster.admin()
    except (OSError, asyncpg.PostgresError):
        return 0
    try:
        count: int = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", APPLICATION_NAME
        )
        return count
    finally:
        await admin.close()


async def until_listening(cluster: pg_cluster.PostgresCluster, count: int) -> None:
    while True:
        if await listeners(cluster) == count:
            return
        await asyncio.sleep(0.1)


async def test_a_stream_survives_a_database_restart(
    private_cluster: pg_cluster.PostgresCluster, tmp_path: Path
) -> None:
    replicas = Replicas(tmp_path, private_cluster.url())
    try:
        a, b = replicas.serve(), replicas.serve()
        await asyncio.wait_for(until_listening(private_cluster, 2), BEFORE_DEADLINE)
        async with client(a) as api:
            job, path = await long_job(api, replicas.simulator_url)
            stream = Stream()
            async with api.stream("GET", f"/v1/jobs/{job['id']}/stream") as response:
                events = read(response, stream)
                assert (await anext(events)).data["status"] == "pending"

                private_cluster.stop("fast")  # every connection, the listeners' too, is cut
                beats = stream.heartbeats
                await asyncio.sleep(3 * HEARTBEAT_SECONDS)  # an outage of a few heartbeats
                private_cluster.start()
                # Each replica listens again on a new connection.
                await asyncio.wait_for(until_listening(private_cluster, 2), BEFORE_DEADLINE)
                await call_back(b, path, job["evolink_task_id"])

                async def rest() -> None:
                    async for _ in events:
                        pass

                await asyncio.wait_for(rest(), BEFORE_DEADLINE)
        assert stream.ended
        assert stream.statuses == ["pending", "completed"]
        assert stream.events[-1].data["archive_status"] == "off"
        assert stream.heartbeats > beats  # the same connection lived through the restart
    finally:
        replicas.stop()
