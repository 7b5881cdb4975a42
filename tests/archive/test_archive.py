"""Archiving in process: a completed job's images stored locally and served, both databases."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import httpx
from PIL import Image
from starlette.requests import Request
from starlette.responses import Response

from app.archive import service as archive_service
from app.archive.worker import ArchiveWorker
from app.db import utcnow
from tests.archive.conftest import Sessions, completed_job, images, set_images, settle
from tests.support.http_server import ScriptedServer
from tests.support.rows import set_job, stored
from tests.test_metrics import scrape, value


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def serve_bytes(body: bytes, content_type: str = "image/png"):  # type: ignore[no-untyped-def]
    async def handler(_request: Request) -> Response:
        return Response(body, media_type=content_type)

    return handler


async def test_completed_job_is_archived_and_served(
    client: httpx.AsyncClient,
    beta_client: httpx.AsyncClient,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
) -> None:
    big, small = png(600, 400), png(100, 50, (0, 90, 200))
    urls = [
        source.route("/a/0.png", serve_bytes(big)),
        source.route("/a/1.png", serve_bytes(small)),
    ]
    job_id = await completed_job(session_factory, urls)
    before = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert (before["archive_status"], before["images"]) == ("pending", [])
    assert (await client.get(f"/v1/jobs/{job_id}/images/0")).json()["code"] == "image_not_archived"

    await settle(archiver, session_factory)

    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["archive_status"] == "archived"
    assert job["results"] == urls
    assert job["images"][0] == {
        "index": 0,
        "url": f"/v1/jobs/{job_id}/images/0",
        "thumbnail_url": f"/v1/jobs/{job_id}/images/0/thumbnail",
        "content_type": "image/png",
        "bytes": len(big),
        "width": 600,
        "height": 400,
        "sha256": hashlib.sha256(big).hexdigest(),
        "source_url": urls[0],
    }
    listed = (await client.get("/v1/jobs")).json()["data"][0]
    assert listed["images"] == job["images"]

    image = await client.get(f"/v1/jobs/{job_id}/images/0")
    assert image.status_code == 200
    assert image.content == big
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-length"] == str(len(big))
    assert image.headers["etag"] == f'"{hashlib.sha256(big).hexdigest()}"'
    assert image.headers["cache-control"].startswith("private, max-age=")
    again = await client.get(
        f"/v1/jobs/{job_id}/images/0", headers={"If-None-Match": image.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""

    thumb = await client.get(f"/v1/jobs/{job_id}/images/0/thumbnail")
    assert thumb.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(thumb.content)) as opened:
        assert (opened.format, opened.size) == ("WEBP", (256, 171))
    small_thumb = await client.get(f"/v1/jobs/{job_id}/images/1/thumbnail")
    with Image.open(io.BytesIO(small_thumb.content)) as opened:
        assert opened.size == (100, 50)  # never enlarged

    # The source is gone: the archive still serves the image.
    source.handlers.pop("/a/0.png")
    assert (await client.get(f"/v1/jobs/{job_id}/images/0")).content == big

    # Another caller: the job does not exist for them.
    other = await beta_client.get(f"/v1/jobs/{job_id}/images/0")
    assert (other.status_code, other.json()["code"]) == (404, "job_not_found")
    missing = await client.get(f"/v1/jobs/{job_id}/images/2")
    assert (missing.status_code, missing.json()["code"]) == (404, "image_not_found")


async def test_source_errors_are_retried_until_they_pass(
    client: httpx.AsyncClient,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
) -> None:
    body = png(64, 64)
    calls = 0

    async def flaky(_request: Request) -> Response:
        nonlocal calls
        calls += 1
        return (
            Response("oops", status_code=500)
            if calls <= 2
            else Response(body, media_type="image/png")
        )

    job_id = await completed_job(session_factory, [source.route("/flaky.png", flaky)])
    await archiver.tick()
    await archiver.drain()
    [image] = await images(session_factory, job_id)
    assert (image.status, image.error_code, image.attempts) == ("pending", "source_error", 1)
    assert image.next_attempt_at is not None

    await settle(archiver, session_factory)
    [image] = await images(session_factory, job_id)
    assert (image.status, image.attempts, calls) == ("archived", 3, 3)
    assert (await client.get(f"/v1/jobs/{job_id}/images/0")).content == body


async def test_gives_up_with_source_expired_once_the_link_is_dead(
    client: httpx.AsyncClient,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
) -> None:
    async def down(_request: Request) -> Response:
        return Response("down", status_code=503)

    job_id = await completed_job(session_factory, [source.route("/down.png", down)])
    await archiver.tick()
    await archiver.drain()
    # A day later (EvoLink's links live 24 h): the next attempt ends it.
    await set_images(session_factory, job_id, source_expires_at=utcnow() - timedelta(seconds=1))
    await settle(archiver, session_factory)
    [image] = await images(session_factory, job_id)
    assert (image.status, image.error_code) == ("failed", "source_expired")
    assert "source_error" in (image.error_message or "")
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert (job["status"], job["archive_status"], job["images"]) == ("completed", "failed", [])


async def test_backfill_archives_old_jobs_whose_links_still_work(
    client: httpx.AsyncClient,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
) -> None:
    fresh = await completed_job(session_factory, [source.route("/old.png", serve_bytes(png(8, 8)))])
    stale = await completed_job(
        session_factory, [source.route("/older.png", serve_bytes(png(8, 8)))]
    )
    # Both completed before the archive existed; one of them over a day ago.
    await set_job(session_factory, fresh, archive_status=None)
    await set_job(
        session_factory, stale, archive_status=None, completed_at=utcnow() - timedelta(hours=25)
    )
    async with session_factory() as session:
        assert await archive_service.backfill(session, utcnow()) == 1
        await session.commit()
    await settle(archiver, session_factory)
    assert (await stored(session_factory, fresh)).archive_status == "archived"
    assert (await stored(session_factory, stale)).archive_status is None


async def test_a_body_that_is_not_an_image_fails_the_archive_not_the_job(
    client: httpx.AsyncClient,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
) -> None:
    good = png(20, 20)
    urls = [
        source.route("/mixed/0.png", serve_bytes(good)),
        source.route("/mixed/1.png", serve_bytes(b"<html>hello</html>", "image/png")),
    ]
    job_id = await completed_job(session_factory, urls)
    await settle(archiver, session_factory)

    first, second = await images(session_factory, job_id)
    assert (first.status, second.status, second.error_code) == (
        "archived",
        "failed",
        "not_an_image",
    )
    assert second.attempts == 1  # never retried
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert (job["status"], job["archive_status"]) == ("completed", "failed")
    assert [image["index"] for image in job["images"]] == [0]
    assert (await client.get(f"/v1/jobs/{job_id}/images/1")).json()["code"] == "image_not_archived"


async def test_metrics_count_archived_and_failed_images_bytes_and_lag(
    anonymous: httpx.AsyncClient,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
) -> None:
    before = await scrape(anonymous)
    body = png(30, 30)
    urls = [
        source.route("/metrics/0.png", serve_bytes(body)),
        source.route("/metrics/1.png", serve_bytes(b"nope", "image/png")),
    ]
    await completed_job(session_factory, urls)
    await settle(archiver, session_factory)
    after = await scrape(anonymous)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("evolink_jobs_archive_images_total", outcome="archived") == 1
    assert moved("evolink_jobs_archive_images_total", outcome="failed") == 1
    assert moved("evolink_jobs_archive_stored_bytes_total") > len(body)  # and its thumbnail
    assert moved("evolink_jobs_archive_lag_seconds_count") == 1


async def test_an_image_another_process_holds_waits_for_its_lease(
    archiver: ArchiveWorker, session_factory: Sessions, source: ScriptedServer
) -> None:
    job_id = await completed_job(
        session_factory, [source.route("/held.png", serve_bytes(png(8, 8)))]
    )
    await archiver.tick()  # starts the job: one pending image, which this tick also claims
    await archiver.drain()
    await set_images(
        session_factory, job_id, status="pending", claimed_by="elsewhere",
        claim_expires_at=utcnow() + timedelta(minutes=1), next_attempt_at=utcnow(),
    )  # fmt: skip
    hits = source.hits["/held.png"]
    assert await archiver.tick() == 0
    await set_images(session_factory, job_id, claim_expires_at=utcnow() - timedelta(seconds=1))
    assert await archiver.tick() == 1
    await archiver.drain()
    assert source.hits["/held.png"] == hits + 1
    [image] = await images(session_factory, job_id)
    assert (image.status, image.claimed_by) == ("archived", None)
