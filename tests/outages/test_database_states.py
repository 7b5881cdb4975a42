"""Every kind of PostgreSQL trouble answers 503 `database_unavailable`, and the service recovers
without a restart: a real server stopped, shutting down, starved of connections, refusing them,
or ending our session mid-request."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from tests.conftest import ALPHA_KEY, EVOLINK_URL, client_for
from tests.support import evolink_payloads as payloads
from tests.support.pg_cluster import DATABASE, PostgresCluster, release

State = Callable[[PostgresCluster], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def stopped(cluster: PostgresCluster) -> AsyncIterator[None]:
    """The server is down: connections are refused at the socket."""
    cluster.stop("fast")
    try:
        yield
    finally:
        cluster.start()


@asynccontextmanager
async def shutting_down(cluster: PostgresCluster) -> AsyncIterator[None]:
    """A smart shutdown waits for a client: 57P03 cannot_connect_now for everyone else."""
    await cluster.terminate_sessions()
    holder = await cluster.shut_down_smartly()
    try:
        yield
    finally:
        await holder.close()
        cluster.wait_stopped()
        cluster.start()


@asynccontextmanager
async def starved(cluster: PostgresCluster) -> AsyncIterator[None]:
    """Our sessions ended and every slot taken by others: 53300 too many clients."""
    await cluster.terminate_sessions()
    held = await cluster.take_every_slot()
    try:
        yield
    finally:
        await release(held)


@asynccontextmanager
async def refusing(cluster: PostgresCluster) -> AsyncIterator[None]:
    """ALLOW_CONNECTIONS false and our sessions terminated: 55000 at every connect."""
    await cluster.execute(f"ALTER DATABASE {DATABASE} WITH ALLOW_CONNECTIONS false")
    await cluster.terminate_sessions()
    try:
        yield
    finally:
        await cluster.execute(f"ALTER DATABASE {DATABASE} WITH ALLOW_CONNECTIONS true")


STATES: dict[str, State] = {
    "stopped": stopped,
    "shutting_down": shutting_down,
    "starved": starved,
    "refusing_connections": refusing,
}


def assert_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, f"{response.request.url.path}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"


async def submitted_job(
    api: httpx.AsyncClient, evolink: respx.MockRouter
) -> tuple[str, str, dict[str, Any]]:
    """A job EvoLink accepted; its id, its callback path and EvoLink's `completed` callback."""
    created = await api.post("/v1/jobs", json={"prompt": "before the trouble"})
    assert created.status_code == 202, created.text
    sent = json.loads(evolink.calls.last.request.content)
    task_id = evolink.calls.last.response.json()["id"]
    return (
        created.json()["id"],
        httpx.URL(sent["callback_url"]).path,
        payloads.completed_task(task_id),
    )


@pytest.fixture
def evolink() -> Iterator[respx.MockRouter]:
    """EvoLink accepts every job as a task of its own (the cluster keeps rows between tests)."""
    with respx.mock(base_url=EVOLINK_URL, assert_all_called=False) as router:
        router.post("/v1/images/generations").mock(
            side_effect=lambda _request: httpx.Response(
                200, json=payloads.created_task(f"task-unified-outage-{uuid.uuid4().hex}")
            )
        )
        yield router


@pytest.mark.parametrize("state", STATES)
async def test_every_route_answers_503_then_recovers_without_a_restart(
    app: FastAPI, cluster: PostgresCluster, evolink: respx.MockRouter, state: str
) -> None:
    async with client_for(app, ALPHA_KEY) as api, client_for(app, None) as anonymous:
        job_id, callback, completed = await submitted_job(api, evolink)

        async with STATES[state](cluster):
            for response in (
                await api.post("/v1/jobs", json={"prompt": "during the trouble"}),
                await api.get(f"/v1/jobs/{job_id}"),
                await api.get("/v1/jobs"),
                await anonymous.get("/readyz"),
                await anonymous.post(callback, json=completed),
            ):
                assert_database_unavailable(response)
            # /metrics reads a snapshot, never the database: it still answers, with the
            # process's own counters, while the database is away.
            metrics = await anonymous.get("/metrics")
            assert metrics.status_code == 200
            assert "evolink_jobs_metrics_snapshot_age_seconds" in metrics.text

        # The same process, no restart: EvoLink's retried callback is stored this time.
        assert (await anonymous.get("/readyz")).status_code == 200
        retried = await anonymous.post(callback, json=completed)
        assert retried.status_code == 200, retried.text
        assert retried.json() == {"outcome": "applied"}
        assert (await api.get(f"/v1/jobs/{job_id}")).json()["status"] == "completed"
        assert (await api.post("/v1/jobs", json={"prompt": "after"})).status_code == 202


async def test_a_session_ended_mid_request_answers_503(
    app: FastAPI, cluster: PostgresCluster, evolink: respx.MockRouter
) -> None:
    """pg_terminate_backend while the callback waits on a row lock: 57P01 admin_shutdown."""
    async with client_for(app, ALPHA_KEY) as api, client_for(app, None) as anonymous:
        job_id, callback, completed = await submitted_job(api, evolink)
        locker = await cluster.admin(DATABASE)
        try:
            await locker.execute("BEGIN")
            await locker.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", uuid.UUID(job_id))
            pending = asyncio.create_task(anonymous.post(callback, json=completed))
            await _wait_for_lock_waiter(locker)
            await locker.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            assert_database_unavailable(await pending)
            await locker.execute("ROLLBACK")
        finally:
            await locker.close()
        retried = await anonymous.post(callback, json=completed)
        assert retried.json() == {"outcome": "applied"}


async def _wait_for_lock_waiter(connection: Any) -> None:
    # The connection holds the lock inside a transaction, and PostgreSQL keeps the
    # statistics a transaction first read: drop that snapshot before every look.
    for _ in range(600):
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the callback never waited on the row lock")


async def test_a_genuine_database_bug_stays_500(
    app: FastAPI, cluster: PostgresCluster, evolink: respx.MockRouter
) -> None:
    """SQL that no longer matches the schema is our bug, not an outage: no Retry-After."""
    async with client_for(app, ALPHA_KEY) as api:
        job_id, _, _ = await submitted_job(api, evolink)
    await cluster.execute(
        "ALTER TABLE jobs RENAME COLUMN prompt TO prompt_renamed", database=DATABASE
    )
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {ALPHA_KEY}"},
        ) as api:
            response = await api.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 500, response.text
        assert response.json()["code"] == "internal_error"
        assert "Retry-After" not in response.headers
    finally:
        await cluster.execute(
            "ALTER TABLE jobs RENAME COLUMN prompt_renamed TO prompt", database=DATABASE
        )
