"""The archive end to end, over real HTTP and real processes, on both databases: a job through
the simulator archived and served after the simulator's links died; a worker killed in the
middle of a download, its work taken over by another after the lease."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from app.archive.models import ArchiveImage
from app.db import create_engine, create_session_factory
from tests.archive.conftest import completed_job
from tests.archive.test_archive import png
from tests.e2e.conftest import wait_until
from tests.support import databases, processes
from tests.support.http_server import ScriptedServer, serving

ALPHA = "e2e-alpha-key"
RESULT_TTL_SECONDS = 8


def database(kind: str, tmp: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / f'{name}.db'}"
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = f"{base}_{name}"  # beside the suite's own database
    databases.reset_postgres(url)
    return url


@dataclass(frozen=True)
class Stack:
    api_url: str
    simulator_url: str
    database_url: str
    env: dict[str, str]
    tmp: Path


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The simulator (its links die after RESULT_TTL_SECONDS), a service with a local archive."""
    tmp = tmp_path_factory.mktemp(f"archive-e2e-{request.param}")
    database_url = database(request.param, tmp, "archive_e2e")
    sim_port, api_port = processes.free_port(), processes.free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    env = processes.service_env(
        database_url, simulator_url, api_port,
        ARCHIVE_URL=f"file://{tmp / 'archive'}", LOG_LEVEL="INFO",
    )  # fmt: skip
    processes.migrate(env)
    sim = processes.Process(
        ["simulator", "--host", "127.0.0.1", "--port", str(sim_port), "--task-seconds", "0.5",
         "--result-ttl-seconds", str(RESULT_TTL_SECONDS), "--allow-insecure-callbacks"],
        env, tmp / "simulator.log", f"{simulator_url}/_sim/health",
    ).start()  # fmt: skip
    service = processes.service(tmp, env, api_port)
    try:
        service.start()
        yield Stack(f"http://127.0.0.1:{api_port}", simulator_url, database_url, env, tmp)
    finally:
        service.terminate()
        sim.terminate()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {ALPHA}"}
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=10) as client:
        yield client


async def wait_archived(api: httpx.AsyncClient, job_id: str, within: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        job: dict[str, Any] = (await api.get(f"/v1/jobs/{job_id}")).json()
        if job["archive_status"] != "pending":
            return job
        assert time.monotonic() < deadline, f"not archived: {job}"
        await asyncio.sleep(0.1)


async def test_images_outlive_the_simulators_links(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/v1/jobs", json={"prompt": f"a lighthouse #{uuid.uuid4().hex[:8]}", "n": 2, "size": "3:2"}
    )
    job = await wait_until(api, created.json()["id"])
    assert job["status"] == "completed"
    async with httpx.AsyncClient(timeout=10) as anyone:
        originals = [(await anyone.get(url)).content for url in job["results"]]
    job = await wait_archived(api, job["id"])
    assert job["archive_status"] == "archived"
    assert [image["sha256"] for image in job["images"]] == [
        hashlib.sha256(body).hexdigest() for body in originals
    ]
    for image, body in zip(job["images"], originals, strict=True):
        served = await api.get(image["url"])
        assert served.content == body and served.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(body)) as original:
            assert (image["width"], image["height"]) == original.size
        thumb = await api.get(image["thumbnail_url"])
        with Image.open(io.BytesIO(thumb.content)) as opened:
            assert opened.format == "WEBP" and max(opened.size) == 256

    # The simulator's links die (its TTL, EvoLink's 24 h); the archive still serves the images.
    async with httpx.AsyncClient(timeout=10) as anyone:
        deadline = time.monotonic() + RESULT_TTL_SECONDS + 10
        while (await anyone.get(job["results"][0])).status_code == 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.25)
    for image, body in zip(job["images"], originals, strict=True):
        assert (await api.get(image["url"])).content == body


@pytest.fixture
def kill_env(stack: Stack) -> dict[str, str]:
    """Settings for standalone workers on a database of their own (the stack's service would
    otherwise take the work), with a short lease."""
    kind = "sqlite" if stack.database_url.startswith("sqlite") else "postgresql"
    env = {**stack.env, "DATABASE_URL": database(kind, stack.tmp, "archive_kill")}
    env["CLAIM_LEASE_SECONDS"] = "3"
    env["ARCHIVE_DOWNLOAD_TIMEOUT_SECONDS"] = "2"
    processes.migrate(env)
    return env


async def test_a_killed_workers_download_is_taken_over_after_its_lease(
    stack: Stack, kill_env: dict[str, str]
) -> None:
    body = png(50, 30)

    async def first_hangs(request: Request) -> Response:
        if source.hits["/kill.png"] == 1:
            await asyncio.sleep(20)
        return Response(body, media_type="image/png")

    source = ScriptedServer()
    url = source.route("/kill.png", first_hangs)
    env = kill_env
    engine = create_engine(env["DATABASE_URL"])
    sessions = create_session_factory(engine)
    try:
        with serving(source):
            job_id = await completed_job(sessions, [url])
            doomed = processes.worker(stack.tmp, env, "doomed").start()
            try:
                deadline = time.monotonic() + 20
                while source.hits["/kill.png"] < 1:
                    assert time.monotonic() < deadline, doomed.output()
                    await asyncio.sleep(0.05)
                image = await _image(sessions, job_id)
                assert image.status == "pending" and image.claimed_by
                doomed.kill()  # mid-download: no chance to release its claim
            finally:
                doomed.kill()
            heir = processes.worker(stack.tmp, env, "heir").start()
            try:
                deadline = time.monotonic() + 30
                while (image := await _image(sessions, job_id)).status == "pending":
                    assert time.monotonic() < deadline, heir.output()
                    await asyncio.sleep(0.1)
            finally:
                heir.terminate()
        assert (image.status, image.sha256) == ("archived", hashlib.sha256(body).hexdigest())
        assert source.hits["/kill.png"] == 2
    finally:
        await engine.dispose()


async def _image(sessions: Any, job_id: str) -> ArchiveImage:
    async with sessions() as session:
        image: ArchiveImage | None = await session.scalar(
            select(ArchiveImage).where(ArchiveImage.job_id == uuid.UUID(job_id))
        )
        assert image is not None
        return image
