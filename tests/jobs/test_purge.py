"""`evolink-jobs purge`: finished jobs older than the cutoff go, with their events, keys and
archived objects; everything else stays."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.archive.models import ArchiveImage, ImageStatus
from app.archive.store import ArchiveStore
from app.db import utcnow
from app.evolink.models import DEFAULT_MODEL
from app.jobs.models import IdempotencyKey, Job, JobEvent
from app.jobs.purge import DurationInvalid, parse_duration, purge_finished
from tests.conftest import make_settings
from tests.support.rows import Sessions
from tests.test_cli import base_env, run_cli

OLD = utcnow() - timedelta(days=40)
CUTOFF = utcnow() - timedelta(days=30)


async def add_job(sessions: Sessions, **values: Any) -> uuid.UUID:
    job = Job(caller="alpha", model=DEFAULT_MODEL, prompt="p", n=1, **values)
    async with sessions() as session:
        session.add(job)
        await session.flush()
        session.add(JobEvent(job_id=job.id, source="callback", outcome="applied", status="x"))
        session.add(JobEvent(job_id=job.id, source="poll", outcome="duplicate", status="x"))
        await session.commit()
    return job.id


def finished(at: Any = OLD, **values: Any) -> dict[str, Any]:
    return {"status": "completed", "completed_at": at, "final_source": "callback", **values}


async def remaining(sessions: Sessions) -> tuple[set[uuid.UUID], int]:
    async with sessions() as session:
        ids = set((await session.scalars(select(Job.id))).all())
        events = await session.scalar(select(func.count()).select_from(JobEvent))
    return ids, int(events or 0)


async def test_purge_deletes_only_old_finished_jobs_in_batches(session_factory: Sessions) -> None:
    gone = [await add_job(session_factory, **finished()) for _ in range(5)]
    gone.append(await add_job(session_factory, **finished(status="failed", error_code="x")))
    kept = [
        await add_job(session_factory, **finished(at=utcnow())),  # finished recently
        await add_job(session_factory, status="processing", created_at=OLD),  # not finished
        await add_job(session_factory, **finished(claimed_by="w1")),  # held by a worker
        await add_job(session_factory, **finished(archive_status="pending")),  # being archived
    ]
    async with session_factory() as session:
        session.add(IdempotencyKey(caller="alpha", key="k", fingerprint="f", job_id=gone[0]))
        await session.commit()
    batches: list[int] = []

    purged = await purge_finished(
        session_factory, None, CUTOFF, batch_size=2, progress=batches.append
    )

    assert purged == len(gone)
    assert batches == [2, 4, 6]  # three short transactions, not one long one
    ids, events = await remaining(session_factory)
    assert ids == set(kept)
    assert events == 2 * len(kept)
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
    # Nothing more is old enough: a second purge deletes nothing.
    assert await purge_finished(session_factory, None, CUTOFF) == 0


async def test_purge_deletes_archived_objects_with_the_job(
    session_factory: Sessions, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, archive_url=f"file://{tmp_path}")
    store = ArchiveStore.from_settings(settings)
    assert store is not None
    old = await add_job(session_factory, **finished(archive_status="archived"))
    new = await add_job(session_factory, **finished(at=utcnow(), archive_status="archived"))
    for job_id in (old, new):
        for name in ("image", "thumb"):
            (tmp_path / f"{job_id}-{name}").write_bytes(b"png")
        async with session_factory() as session:
            session.add(
                ArchiveImage(
                    job_id=job_id,
                    index=0,
                    status=ImageStatus.ARCHIVED,
                    source_url="https://x.test/a.png",
                    source_expires_at=OLD,
                    job_completed_at=OLD,
                    object_key=f"{job_id}-image",
                    thumbnail_key=f"{job_id}-thumb",
                    stored_at=OLD,
                )
            )
            await session.commit()

    assert await purge_finished(session_factory, store, CUTOFF) == 1

    assert files_in(tmp_path) == [f"{new}-image", f"{new}-thumb"]
    async with session_factory() as session:
        images = (await session.scalars(select(ArchiveImage.job_id))).all()
    assert images == [new]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("1.5w", 907200)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "0s", "1y", "1d2h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(DurationInvalid):
        parse_duration(text)


def test_cli_purge_refuses_a_bad_duration_in_one_line(tmp_path: Path) -> None:
    result = run_cli("purge", "--finished-before", "soon", env=base_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "evolink-jobs: --finished-before: 'soon' is not a duration such as 30d, 12h, 90m, 45s or 2w"
    ]


def test_cli_purge_needs_a_cutoff(tmp_path: Path) -> None:
    result = run_cli("purge", env=base_env(tmp_path))
    assert result.returncode == 2
    assert "--finished-before" in result.stderr


def test_cli_purge_runs(tmp_path: Path, database_url: str) -> None:
    env = base_env(tmp_path, DATABASE_URL=database_url)
    result = run_cli("purge", "--finished-before", "3650d", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 finished jobs purged (finished more than 3650d ago)"
