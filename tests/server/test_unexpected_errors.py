"""A bug is a 500 logged once, by us, in JSON, and the log never carries the caller's data.

A real `serve` whose table lacks a column the code writes (a bug as real as any): the INSERT of
a job fails with the prompt and metadata among its SQL parameters. Before, uvicorn logged the
exception a second time, and both traces printed the parameters.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import databases, processes

ALPHA = "e2e-alpha-key"


def break_schema(url: str) -> None:
    async def rename() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE jobs RENAME COLUMN mask_url TO mask_gone"))
        await engine.dispose()

    asyncio.run(rename())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def serve(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, processes.Process]]:
    tmp: Path = tmp_path_factory.mktemp(f"bug-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'jobs.db'}"
    else:
        base = os.environ.get("TEST_DATABASE_URL")
        if not base:
            pytest.skip("TEST_DATABASE_URL is not set")
        url = base + "_bug"
        databases.reset_postgres(url)
    port = processes.free_port()
    env = processes.service_env(url, "http://127.0.0.1:9", port, LOG_LEVEL="INFO")
    processes.migrate(env)
    break_schema(url)
    server = processes.service(tmp, env, port, "--no-worker").start()
    try:
        yield port, server
    finally:
        server.terminate()


async def test_a_bug_is_one_log_line_without_sql_parameters(
    serve: tuple[int, processes.Process],
) -> None:
    port, server = serve
    marker, request_id = uuid.uuid4().hex, uuid.uuid4().hex
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {ALPHA}", "X-Request-ID": request_id},
        timeout=30,
    ) as api:
        response = await api.post(
            "/v1/jobs",
            json={"prompt": f"secret prompt {marker}", "metadata": {"private": f"m-{marker}"}},
        )
        assert response.status_code == 500
        assert response.json()["code"] == "internal_error"
        assert marker not in response.text
        assert (await api.get("/healthz")).status_code == 200
    server.terminate()  # everything it would log is written

    records = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    traced = [r for r in records if "exception" in r or r.get("exc_info")]
    assert [r["event"] for r in traced] == ["unhandled_error"], "logged once, by us"
    [bug] = traced
    assert bug.get("request_id") == request_id
    assert "SQL parameters hidden" in bug["exception"]
    assert marker not in server.output(), "the caller's data reached the log"
