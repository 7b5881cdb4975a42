"""The hot lookup answers exactly as the FastAPI route does, and steps aside when it must."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.archive.models import ArchiveImage, ArchiveStatus, ImageStatus
from app.db import utcnow
from app.evolink.schemas import Task
from app.hot.database import HotDatabase
from app.jobs import service as jobs_service
from app.jobs.models import EventSource
from app.jobs.schemas import JobCreate
from app.jobs.state_machine import Observation, apply_observation
from app.metrics import HTTP_REQUESTS, REGISTRY
from tests.conftest import make_settings
from tests.support import evolink_payloads as payloads

Sessions = async_sessionmaker[AsyncSession]


def hot(outcome: str, path: str = "lookup") -> float:
    labels = {"path": path, "outcome": outcome}
    return REGISTRY.get_sample_value("evolink_jobs_hot_path_requests_total", labels) or 0.0


async def fastapi_answer(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """The FastAPI route's answer: a query string (which the route ignores) keeps it off the hot
    path."""
    return await client.get(url, params={"via": "fastapi"})


async def new_job(sessions: Sessions, caller: str = "alpha", **body: object) -> uuid.UUID:
    async with sessions() as session:
        request = JobCreate.model_validate({"prompt": "a cat", **body})
        job = await jobs_service.create_job(session, caller, request, {})
        await session.commit()
        return job.id


async def observe(sessions: Sessions, job_id: uuid.UUID, task: dict[str, object]) -> None:
    async with sessions() as session:
        observation = Observation(Task.model_validate(task), EventSource.POLL)
        await apply_observation(session, job_id, observation)
        await session.commit()


async def archived(sessions: Sessions, job_id: uuid.UUID, count: int) -> None:
    now = utcnow()
    async with sessions() as session:
        job = await jobs_service.get_job(session, "alpha", job_id)
        job.archive_status = ArchiveStatus.ARCHIVED
        for index in range(count):
            session.add(
                ArchiveImage(
                    job_id=job_id,
                    index=index,
                    status=ImageStatus.ARCHIVED,
                    source_url=f"https://files.evolink.example/{index}.png",
                    source_expires_at=now + timedelta(hours=24),
                    job_completed_at=now,
                    object_key=f"{job_id}/{index}.png",
                    content_type="image/png",
                    size_bytes=1000 + index,
                    width=64,
                    height=48,
                    sha256="ab" * 32,
                    stored_at=now,
                )
            )
        await session.commit()


@pytest.fixture
def postgres_only(app: FastAPI) -> None:
    if app.state.hot_database is None:
        pytest.skip("the hot paths run on PostgreSQL only")


async def test_hot_paths_are_off_on_sqlite(app: FastAPI, database_url: str) -> None:
    assert (app.state.hot_database is None) == database_url.startswith("sqlite")


@pytest.mark.usefixtures("postgres_only")
async def test_every_kind_of_job_reads_as_the_fastapi_route_shows_it(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    queued = await new_job(session_factory, metadata={"order": 7, "tags": ["a", "é"]})
    processing = await new_job(session_factory, size="1024x1536", n=2)
    await observe(
        session_factory, processing, payloads.processing_task("task-unified-p", progress=40)
    )
    failed = await new_job(session_factory)
    await observe(session_factory, failed, payloads.failed_task("task-unified-f"))
    completed = await new_job(session_factory, notify_url="https://hooks.internal.example/x")
    await observe(
        session_factory, completed, payloads.completed_task("task-unified-c", ["https://r/1"])
    )
    await archived(session_factory, completed, count=2)

    for job_id in (queued, processing, failed, completed):
        answered = hot("answered")
        response = await client.get(f"/v1/jobs/{job_id}")
        assert hot("answered") == answered + 1
        reference = await fastapi_answer(client, f"/v1/jobs/{job_id}")
        assert response.status_code == reference.status_code == 200
        assert response.json() == reference.json()
        assert response.headers["content-type"] == reference.headers["content-type"]
        assert response.headers["x-request-id"]
    shown = (await client.get(f"/v1/jobs/{completed}")).json()
    assert [image["index"] for image in shown["images"]] == [0, 1]
    assert shown["images"][1]["bytes"] == 1001
    assert (await client.get(f"/v1/jobs/{failed}")).json()["error"]["code"]


@pytest.mark.usefixtures("postgres_only")
async def test_what_the_hot_path_does_not_know_gets_the_routes_own_answer(
    client: httpx.AsyncClient,
    beta_client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    session_factory: Sessions,
) -> None:
    job_id = await new_job(session_factory)
    answered = hot("answered")
    cases = [
        (anonymous.get(f"/v1/jobs/{job_id}"), 401, "unauthenticated"),
        (anonymous.get(f"/v1/jobs/{job_id}", headers={"Authorization": "Bearer nope"}), 401,
         "unauthenticated"),
        (anonymous.get(f"/v1/jobs/{job_id}", headers={"Authorization": "Basic abc"}), 401,
         "unauthenticated"),
        (beta_client.get(f"/v1/jobs/{job_id}"), 404, "job_not_found"),
        (client.get(f"/v1/jobs/{uuid.uuid4()}"), 404, "job_not_found"),
        (client.get("/v1/jobs/not-a-uuid-but-as-long-as-one-is-1234"), 422, "validation_failed"),
    ]  # fmt: skip
    for request, status, code in cases:
        response = await request
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code
    assert hot("answered") == answered


@pytest.mark.usefixtures("postgres_only")
async def test_a_hot_answer_is_logged_and_counted_under_its_route(
    client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    job_id = await new_job(session_factory)
    labels = {"method": "GET", "route": "/v1/jobs/{job_id}", "status": "200"}
    before = REGISTRY.get_sample_value(HTTP_REQUESTS._name + "_total", labels) or 0.0
    assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 200
    assert REGISTRY.get_sample_value(HTTP_REQUESTS._name + "_total", labels) == before + 1


@pytest.mark.usefixtures("postgres_only")
async def test_a_database_error_steps_the_hot_paths_aside_and_loses_no_answer(
    app: FastAPI, client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    job_id = await new_job(session_factory)
    await app.state.hot_database.pool.close()  # every acquire fails from now on
    aside = hot("stepped_aside")
    first = await client.get(f"/v1/jobs/{job_id}")
    second = await client.get(f"/v1/jobs/{job_id}")
    assert first.status_code == second.status_code == 200
    assert (
        first.json() == second.json() == (await fastapi_answer(client, f"/v1/jobs/{job_id}")).json()
    )
    assert hot("stepped_aside") == aside + 2
    assert not app.state.hot_database.available


async def test_hot_path_pool_size_0_turns_the_hot_paths_off(database_url: str) -> None:
    settings = make_settings(database_url, hot_path_pool_size=0)
    assert await HotDatabase.open(settings) is None
