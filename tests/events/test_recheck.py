"""A change whose signal was lost (here: made behind the service's back, with no signal at all)
still reaches its waiter at the next re-check, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import update

from app.config import Settings
from app.jobs.models import Job
from app.main import create_app
from tests.conftest import _empty_tables, make_settings
from tests.support.jobs import submit

BEFORE_DEADLINE = 30


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, wait_recheck_seconds=0.2)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, run_worker=False)
    async with LifespanManager(application):
        yield application
        await _empty_tables(application.state.session_factory)


async def test_the_recheck_wakes_a_waiter_whose_signal_was_lost(
    app: FastAPI, client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, _ = await submit(client, evolink)
    waited = asyncio.create_task(client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"}))
    while True:  # until the waiter has read the job once and sleeps
        if [w for w in app.state.waiters.hub.open_watches() if w.seen is not None]:
            break
        await asyncio.sleep(0.01)

    async with app.state.session_factory() as session:  # no job_changed: no signal
        await session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job["id"]))
            .values(status="processing", progress=70)
        )
        await session.commit()
    await asyncio.sleep(0.5)
    assert not waited.done()  # woken by the re-check, it read a job that is not final yet

    async with app.state.session_factory() as session:
        await session.execute(
            update(Job).where(Job.id == uuid.UUID(job["id"])).values(status="cancelled")
        )
        await session.commit()
    answer = await asyncio.wait_for(waited, BEFORE_DEADLINE)
    assert answer.json()["status"] == "cancelled"
    assert answer.headers["Preference-Applied"] == "wait=60"
