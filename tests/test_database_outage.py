"""While PostgreSQL is unreachable the API and the callback route answer 503, then recover."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import make_url

from app.main import create_app
from tests.conftest import ALPHA_KEY, client_for, make_settings
from tests.support import databases
from tests.support import evolink_payloads as payloads
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def database_url() -> str:
    """A migrated PostgreSQL database of this test's own."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set")
    # Named after the suite's database: parallel runs against one server must not share it.
    url = make_url(base)
    url = url.set(database=f"{url.database}_outage")
    text = url.render_as_string(hide_password=False)
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
async def outage_app(database_url: str, proxy: TcpProxy) -> AsyncIterator[FastAPI]:
    through_proxy = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    settings = make_settings(
        through_proxy.render_as_string(hide_password=False), verify_callbacks=False
    )
    app = create_app(settings, run_worker=False)
    async with LifespanManager(app):
        yield app


async def test_api_and_callbacks_answer_503_during_an_outage_and_recover(
    outage_app: FastAPI, proxy: TcpProxy
) -> None:
    with respx.mock(base_url="https://evolink.test", assert_all_called=False) as evolink:
        evolink.post("/v1/images/generations").mock(
            return_value=httpx.Response(200, json=payloads.created_task())
        )
        async with client_for(outage_app, ALPHA_KEY) as api, client_for(outage_app, None) as anon:
            created = await api.post("/v1/jobs", json={"prompt": "before the outage"})
            assert created.status_code == 202
            job_id = created.json()["id"]
            sent = json.loads(evolink.calls.last.request.content)
            callback = httpx.URL(sent["callback_url"]).path

            await proxy.cut()
            for response in (
                await api.post("/v1/jobs", json={"prompt": "during the outage"}),
                await api.get(f"/v1/jobs/{job_id}"),
                await anon.get("/readyz"),
                await anon.post(callback, json=payloads.completed_task()),
            ):
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["code"] == "database_unavailable"
                assert response.headers["Retry-After"] == "5"

            await proxy.restore()
            # EvoLink retries the callback; this time it is stored.
            retried = await anon.post(callback, json=payloads.completed_task())
            assert retried.status_code == 200
            assert retried.json() == {"outcome": "applied"}
            job = (await api.get(f"/v1/jobs/{job_id}")).json()
            assert job["status"] == "completed"
            assert (await anon.get("/readyz")).status_code == 200
            listed = (await api.get("/v1/jobs")).json()["data"]
            assert [j["prompt"] for j in listed] == ["before the outage"]
