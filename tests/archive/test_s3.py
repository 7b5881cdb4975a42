"""The archive on S3: a real S3-compatible server (moto's), streamed and presigned answers, and
an outage of the store that archiving waits out."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.archive.worker import ArchiveWorker
from app.config import Settings
from app.main import create_app
from tests.archive.conftest import Sessions, completed_job, images, settle
from tests.archive.test_archive import png, serve_bytes
from tests.conftest import ALPHA_KEY, client_for, make_settings
from tests.support.http_server import ScriptedServer
from tests.support.rows import stored
from tests.support.s3 import MotoServer


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(database_url: str, s3: MotoServer) -> Settings:
    return make_settings(
        database_url,
        archive_allow_private_networks=True,
        archive_download_timeout_seconds=2,
        archive_backoff_initial_seconds=0.01,
        archive_backoff_max_seconds=0.02,
        **s3.settings(),
    )


@pytest.fixture
async def presigning_app(settings: Settings, app: FastAPI) -> AsyncIterator[FastAPI]:
    """A second replica of the API, configured to redirect to presigned URLs."""
    redirecting = create_app(
        settings.model_copy(update={"archive_presigned_redirects": True}), run_worker=False
    )
    async with LifespanManager(redirecting):
        yield redirecting


async def test_images_are_stored_in_s3_and_served_streamed_or_presigned(
    client: httpx.AsyncClient,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
    s3: MotoServer,
    presigning_app: FastAPI,
) -> None:
    body = png(300, 200)
    job_id = await completed_job(session_factory, [source.route("/s3/0.png", serve_bytes(body))])
    await settle(archiver, session_factory)

    assert f"images/{job_id}/0" in s3.objects()
    assert f"images/{job_id}/0.thumbnail.webp" in s3.objects()
    streamed = await client.get(f"/v1/jobs/{job_id}/images/0")
    assert streamed.status_code == 200 and streamed.content == body
    assert streamed.headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'

    async with client_for(presigning_app, ALPHA_KEY) as redirected:
        answer = await redirected.get(f"/v1/jobs/{job_id}/images/0")
        assert answer.status_code == 307
        location = answer.headers["location"]
        assert location.startswith(s3.url) and "X-Amz-Signature=" in location
        thumb = await redirected.get(f"/v1/jobs/{job_id}/images/0/thumbnail")
        assert thumb.status_code == 307
    async with httpx.AsyncClient() as anyone:  # no credentials: the URL carries them
        fetched = await anyone.get(location)
    assert fetched.status_code == 200 and fetched.content == body
    assert fetched.headers["content-type"] == "image/png"


async def test_store_outage_keeps_archiving_pending_until_it_is_back(
    client: httpx.AsyncClient,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
    s3: MotoServer,
) -> None:
    body = png(40, 40)
    job_id = await completed_job(session_factory, [source.route("/s3/out.png", serve_bytes(body))])
    s3.stop()
    try:
        await archiver.tick()
        await archiver.drain()
        [image] = await images(session_factory, job_id)
        assert (image.status, image.error_code) == ("pending", "store_unavailable")
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert (job["status"], job["archive_status"]) == ("completed", "pending")
        failed = await client.get(f"/v1/jobs/{job_id}/images/0")
        assert failed.json()["code"] == "image_not_archived"
    finally:
        s3.start()
    await settle(archiver, session_factory)
    assert (await stored(session_factory, job_id)).archive_status == "archived"
    assert (await client.get(f"/v1/jobs/{job_id}/images/0")).content == body
