"""A stream pauses while PostgreSQL is unreachable and resumes when it is back; the process's
listening connection is made again. In-process, through a proxy the test cuts and restores."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import make_url

from app.events import service
from app.main import create_app
from tests.conftest import ALPHA_KEY, client_for, make_settings
from tests.support import databases
from tests.support import evolink_payloads as payloads
from tests.support.tcp_proxy import TcpProxy

BEFORE_DEADLINE = 30


@pytest.fixture
def database_url() -> str:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = make_url(base)
    text = url.set(database=f"{url.database}_stream_outage").render_as_string(hide_password=False)
    databases.reset_postgres(text)
    databases.migrate(text)
    return text


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    target = make_url(database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.cut()


@pytest.fixture
async def app(database_url: str, proxy: TcpProxy) -> AsyncIterator[FastAPI]:
    through_proxy = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    settings = make_settings(
        through_proxy.render_as_string(hide_password=False),
        verify_callbacks=False,
        wait_recheck_seconds=60,
    )
    application = create_app(settings, run_worker=False)
    async with LifespanManager(application):
        yield application


async def test_a_stream_pauses_during_an_outage_and_resumes(app: FastAPI, proxy: TcpProxy) -> None:
    waiters = app.state.waiters
    with respx.mock(base_url="https://evolink.test", assert_all_called=False) as evolink:
        evolink.post("/v1/images/generations").mock(
            return_value=httpx.Response(200, json=payloads.created_task())
        )
        async with client_for(app, ALPHA_KEY) as api, client_for(app, None) as evolink_side:
            job = (await api.post("/v1/jobs", json={"prompt": "a crane"})).json()
            callback = httpx.URL(json.loads(evolink.calls.last.request.content)["callback_url"])
            job_id = uuid.UUID(job["id"])
            watch, first = await service.open_stream(waiters.hub, waiters.sessions, "alpha", job_id)
            events = service.follow(watch, waiters.sessions, "alpha", first, None)
            assert (await anext(events)).job.status == "pending"

            async def next_event() -> service.JobSnapshot:
                return await anext(events)

            following = asyncio.create_task(next_event())

            await proxy.cut()
            waiters.hub.publish(job_id)  # woken while the database is away: reads fail
            await asyncio.sleep(2 * service.STREAM_RETRY_SECONDS)
            assert not following.done()  # paused, not ended
            assert not waiters.listener.connected.is_set()

            await proxy.restore()
            await asyncio.wait_for(waiters.listener.connected.wait(), BEFORE_DEADLINE)
            for _ in range(100):  # 503 until the app's pool has reconnected
                answer = await evolink_side.post(callback.path, json=payloads.completed_task())
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            snapshot = await asyncio.wait_for(following, BEFORE_DEADLINE)
            await events.aclose()
    assert snapshot.job.status == "completed"
    assert waiters.hub.waiting == 0
