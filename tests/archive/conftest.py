"""Fixtures for the archive: the app with a local archive, its archive worker, completed jobs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.archive.models import ArchiveImage
from app.archive.worker import ArchiveWorker, build_archive_worker
from app.config import Settings
from app.db import utcnow
from app.evolink.schemas import Task
from app.jobs import service as jobs_service
from app.jobs.models import EventSource
from app.jobs.schemas import JobCreate
from app.jobs.state_machine import Observation, apply_observation
from tests.conftest import make_settings
from tests.support import evolink_payloads as payloads
from tests.support.http_server import ScriptedServer, serving

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def archive_dir(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def settings(database_url: str, archive_dir: Path) -> Settings:
    """A local archive in a temporary folder; sources on 127.0.0.1 allowed; quick retries."""
    return make_settings(
        database_url,
        archive_url=f"file://{archive_dir}",
        archive_allow_private_networks=True,
        archive_download_timeout_seconds=2,
        archive_backoff_initial_seconds=0.01,
        archive_backoff_max_seconds=0.02,
        archive_max_bytes=1_000_000,
    )


@pytest.fixture
def archiver(app: FastAPI, settings: Settings) -> ArchiveWorker:
    """Archive work, run a tick at a time by the test."""
    return build_archive_worker(settings, app.state.session_factory, app.state.archive_store)


@pytest.fixture(scope="module")
def source() -> Iterator[ScriptedServer]:
    """A real HTTP server standing in for EvoLink's image host; each test adds its paths."""
    server = ScriptedServer()
    with serving(server):
        yield server


async def completed_job(sessions: Sessions, results: list[str], caller: str = "alpha") -> str:
    """A job completed by EvoLink with these result URLs (through the state machine)."""
    async with sessions() as session:
        job = await jobs_service.create_job(
            session, caller, JobCreate.model_validate({"prompt": "a cat"}), {}
        )
        await session.commit()
    task = Task.model_validate(payloads.completed_task(f"task-unified-{job.id.hex}", results))
    async with sessions() as session:
        await apply_observation(session, job.id, Observation(task, EventSource.POLL))
        await session.commit()
    return str(job.id)


async def settle(archiver: ArchiveWorker, sessions: Sessions, ticks: int = 10) -> None:
    """Tick until no image is pending, making retries due at once (no sleeping)."""
    for _ in range(ticks):
        await archiver.tick()
        await archiver.drain()
        async with sessions() as session:
            pending = (
                await session.scalars(select(ArchiveImage).where(ArchiveImage.status == "pending"))
            ).all()
            if not pending and _ > 0:
                return
            await session.execute(
                update(ArchiveImage)
                .where(ArchiveImage.status == "pending")
                .values(next_attempt_at=utcnow())
            )
            await session.commit()


async def images(sessions: Sessions, job_id: str) -> list[ArchiveImage]:
    async with sessions() as session:
        rows = await session.scalars(
            select(ArchiveImage)
            .where(ArchiveImage.job_id == uuid.UUID(job_id))
            .order_by(ArchiveImage.index)
        )
        return list(rows)


async def set_images(sessions: Sessions, job_id: str, **values: Any) -> None:
    async with sessions() as session:
        await session.execute(
            update(ArchiveImage).where(ArchiveImage.job_id == uuid.UUID(job_id)).values(**values)
        )
        await session.commit()
