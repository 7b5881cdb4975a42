"""Retention: old archives are deleted (by the worker, or `evolink-jobs archive --purge-expired`)
and their images answer 410; `archive --backfill` from the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.archive.worker import ArchiveWorker, build_archive_worker
from app.config import Settings
from app.db import utcnow
from tests.archive.conftest import Sessions, completed_job, images, set_images, settle
from tests.archive.test_archive import png, serve_bytes
from tests.support.http_server import ScriptedServer
from tests.support.processes import BASE_ENV_KEYS
from tests.support.rows import set_job, stored


async def archived_job(
    archiver: ArchiveWorker, sessions: Sessions, source: ScriptedServer, name: str
) -> str:
    job_id = await completed_job(sessions, [source.route(f"/{name}.png", serve_bytes(png(9, 9)))])
    await settle(archiver, sessions)
    return job_id


async def test_the_worker_expires_images_past_retention(
    app: FastAPI,
    settings: Settings,
    client: httpx.AsyncClient,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
    archive_dir: Path,
) -> None:
    old = await archived_job(archiver, session_factory, source, "old")
    new = await archived_job(archiver, session_factory, source, "new")
    await set_images(session_factory, old, stored_at=utcnow() - timedelta(days=3))
    assert (archive_dir / old / "0").exists()

    keeping = build_archive_worker(
        settings.model_copy(update={"archive_retention_days": 2}),
        session_factory,
        app.state.archive_store,
    )
    await keeping.tick()

    [image] = await images(session_factory, old)
    assert (image.status, image.expired_at is not None) == ("expired", True)
    assert not (archive_dir / old / "0").exists()
    assert not (archive_dir / old / "0.thumbnail.webp").exists()
    gone = await client.get(f"/v1/jobs/{old}/images/0")
    assert (gone.status_code, gone.json()["code"]) == (410, "image_expired")
    assert (await client.get(f"/v1/jobs/{old}/images/0/thumbnail")).status_code == 410
    job = (await client.get(f"/v1/jobs/{old}")).json()
    assert (job["archive_status"], job["images"]) == ("archived", [])
    assert (await client.get(f"/v1/jobs/{new}/images/0")).status_code == 200


async def run_cli(
    database_url: str, archive_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`evolink-jobs archive ARGS`, run in a thread: the app under test shares this event loop and
    the SQLite file, and a loop blocked while one of its connections holds the write lock would
    leave the command waiting out its busy timeout (CI saw exactly that)."""
    env = {k: v for k, v in os.environ.items() if k in BASE_ENV_KEYS}
    env.update(
        DATABASE_URL=database_url,
        ARCHIVE_URL=f"file://{archive_dir}",
        ARCHIVE_RETENTION_DAYS="2",
        LOG_LEVEL="WARNING",
    )
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "archive", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_archive_command_backfills_and_purges(
    settings: Settings,
    archiver: ArchiveWorker,
    session_factory: Sessions,
    source: ScriptedServer,
    archive_dir: Path,
) -> None:
    old = await archived_job(archiver, session_factory, source, "cli-old")
    await set_images(session_factory, old, stored_at=utcnow() - timedelta(days=3))
    unarchived = await completed_job(
        session_factory, [source.route("/cli-new.png", serve_bytes(png(5, 5)))]
    )
    await set_job(session_factory, unarchived, archive_status=None)  # from before the archive

    result = await run_cli(settings.database_url, archive_dir, "--backfill", "--purge-expired")

    assert result.returncode == 0, result.stderr
    assert "1 completed jobs queued" in result.stdout
    assert "1 archived images expired" in result.stdout
    assert [i.status for i in await images(session_factory, old)] == ["expired"]
    await settle(archiver, session_factory)
    assert (await stored(session_factory, unarchived)).archive_status == "archived"
