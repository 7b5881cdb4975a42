"""A backlog of queued jobs drains as fast as EvoLink accepts them, not a batch per tick, and
never with more than SUBMIT_CONCURRENCY creates in flight."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select

from app.db import utcnow
from app.evolink.models import DEFAULT_MODEL
from app.jobs.models import Job, JobStatus, SubmitState
from app.worker.runner import Worker
from tests.support import evolink_payloads as payloads
from tests.support.rows import Sessions

JOBS = 200
BATCH = 16
CONCURRENCY = 4
# Far longer than the test may take: a worker that waits for the next tick never finishes.
INTERVAL = 3600


async def queue_jobs(sessions: Sessions, count: int) -> None:
    due = utcnow() - timedelta(seconds=1)
    async with sessions() as session:
        session.add_all(
            Job(
                caller="alpha", model=DEFAULT_MODEL, prompt=f"backlog {i}", n=1, next_attempt_at=due
            )
            for i in range(count)
        )
        await session.commit()


async def submitted(sessions: Sessions) -> int:
    async with sessions() as session:
        query = select(func.count()).where(Job.submit_state == SubmitState.DONE)
        return int(await session.scalar(query) or 0)


@pytest.mark.parametrize(
    "settings",
    [
        {
            "worker_interval_seconds": INTERVAL,
            "worker_batch_size": BATCH,
            "submit_concurrency": CONCURRENCY,
        }
    ],
    indirect=True,
)
async def test_backlog_drains_at_evolinks_pace_within_the_concurrency_cap(
    evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    in_flight = 0
    most_in_flight = 0
    callbacks: list[str] = []
    task_ids = itertools.count()
    all_sent = asyncio.Event()

    async def create(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            await asyncio.sleep(0.02)  # EvoLink is the slow part, as it is in production
            callbacks.append(json.loads(request.content)["callback_url"])
            if len(callbacks) == JOBS:
                all_sent.set()
            task = payloads.created_task(f"task-unified-drain-{next(task_ids)}")
            return httpx.Response(200, json=task)
        finally:
            in_flight -= 1

    evolink.post("/v1/images/generations").mock(side_effect=create)
    await queue_jobs(session_factory, JOBS)

    ticks = 0
    tick = worker.tick

    async def counted_tick() -> int:
        nonlocal ticks
        ticks += 1
        return await tick()

    worker.tick = counted_tick  # type: ignore[method-assign]
    worker.start()
    try:
        async with asyncio.timeout(120):  # a hang guard, not a speed limit
            await all_sent.wait()
            await worker.drain()
    finally:
        await worker.stop(grace_seconds=5)

    assert await submitted(session_factory) == JOBS
    assert len(callbacks) == JOBS
    assert len(set(callbacks)) == JOBS  # each job sent once
    assert most_in_flight <= CONCURRENCY
    assert most_in_flight > 1  # sent side by side, not one at a time
    # Every claim after the first came from a finished job waking the loop, not from the clock.
    assert ticks >= JOBS // BATCH
    async with session_factory() as session:
        statuses = (await session.scalars(select(Job.status).distinct())).all()
    assert statuses == [JobStatus.PENDING]
