"""Fixtures for the web console in process: callers with an admin and limits, signed-in
clients, and jobs written straight into the database (in any state, at any time)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import utcnow
from app.jobs.models import Job, JobEvent
from tests.conftest import ALPHA_KEY, make_settings

Sessions = async_sessionmaker[AsyncSession]
OPS_KEY = "key-ops-admin-0123456789"
GAMMA_KEY = "key-gamma-0123456789"
CALLERS_TOML = f"""
[callers.ops]
api_key = "{OPS_KEY}"
admin = true

[callers.gamma]
api_key = "{GAMMA_KEY}"
[callers.gamma.limits]
credits_per_day = 20
credits_per_month = 100
jobs_in_flight = 3
jobs_per_minute = 10

[limits]
credits_per_day = 500
"""


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """alpha and beta (API_KEYS), gamma with limits and ops, an admin (CALLERS_FILE)."""
    callers = tmp_path / "callers.toml"
    callers.write_text(CALLERS_TOML)
    return make_settings(database_url, callers_file=callers)


def browser(app: FastAPI) -> httpx.AsyncClient:
    """A client that keeps cookies, like a browser, and never sends an API key."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://jobs.example.test"
    )


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    """Sign in through the form, as a person would; the answer to the form's post."""
    page = await client.get("/console/sign-in")
    assert page.status_code == 200
    return await client.post(
        "/console/sign-in", data={"api_key": key, "csrf_token": csrf_token(page.text)}
    )


@pytest.fixture
async def alpha_console(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Caller alpha, signed in to the console."""
    async with browser(app) as client:
        assert (await sign_in(client, ALPHA_KEY)).status_code == 303
        yield client


@pytest.fixture
async def ops_console(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Caller ops (an admin), signed in to the console."""
    async with browser(app) as client:
        assert (await sign_in(client, OPS_KEY)).status_code == 303
        yield client


async def add_job(
    sessions: Sessions,
    caller: str = "alpha",
    prompt: str = "a cat",
    *,
    created_at: datetime | None = None,
    **values: Any,
) -> Job:
    """A job row as the service would have stored it, with `values` overriding columns."""
    now = created_at or utcnow()
    job = Job(
        id=uuid.uuid4(),
        caller=caller,
        status=values.pop("status", "completed"),
        progress=values.pop("progress", 100),
        model="gpt-4o-image",
        prompt=prompt,
        size=values.pop("size", "1:1"),
        n=values.pop("n", 1),
        image_urls=values.pop("image_urls", []),
        results=values.pop("results", []),
        created_at=now,
        updated_at=now,
        **values,
    )
    async with sessions() as session:
        session.add(job)
        await session.commit()
    return job


async def add_event(sessions: Sessions, job: Job, **values: Any) -> None:
    async with sessions() as session:
        session.add(JobEvent(job_id=job.id, received_at=utcnow(), **values))
        await session.commit()
