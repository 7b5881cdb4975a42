"""Fixtures: the app on SQLite (always) and PostgreSQL (when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import structlog
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import Base
from app.main import create_app
from app.worker.runner import Worker, build_worker
from tests.support import databases

# structlog's development default renders an exception with rich, every frame's locals included:
# over a minute for an ASGI stack. The tests' own output keeps plain tracebacks.
structlog.configure(
    processors=[
        *structlog.get_config()["processors"][:-1],
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
    ]
)

EVOLINK_URL = "https://evolink.test"
PUBLIC_URL = "https://jobs.example.test"
CALLBACK_SECRET = "test-callback-secret-of-at-least-32-bytes"
ALPHA_KEY = "key-alpha-0123456789"
BETA_KEY = "key-beta-0123456789"
EVOLINK_KEY = "sk-evo-test-key"


def pytest_report_header() -> str:
    pg = os.environ.get("TEST_DATABASE_URL")
    return f"databases: sqlite{', postgresql (' + databases.redact(pg) + ')' if pg else ''}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database of each kind, once per session."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "jobs.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        pg = os.environ.get("TEST_DATABASE_URL")
        if not pg:
            pytest.skip("TEST_DATABASE_URL is not set")
        url = pg
        databases.reset_postgres(url)
    databases.migrate(url)
    return url


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: a fake EvoLink, an HTTPS public URL, two callers."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "evolink_api_key": EVOLINK_KEY,
        "evolink_base_url": EVOLINK_URL,
        "public_base_url": PUBLIC_URL,
        "callback_secret": CALLBACK_SECRET,
        "api_keys": f"alpha:{ALPHA_KEY},beta:{BETA_KEY}",
        "archive_url": "off",  # tests/archive turn it on, into a temporary folder
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan run, background work driven by the `worker` fixture."""
    application = create_app(settings, run_worker=False)
    async with LifespanManager(application):
        yield application
        await _empty_tables(application.state.session_factory)


async def _empty_tables(factory: async_sessionmaker[AsyncSession]) -> None:
    async with factory() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(text(f"DELETE FROM {table.name}"))  # noqa: S608
        await session.commit()


@pytest.fixture
def worker(app: FastAPI, settings: Settings) -> Worker:
    """Background work, run a tick at a time by the test (`await worker.tick(); drain()`)."""
    return build_worker(
        settings, app.state.session_factory, app.state.submitter, app.state.hot_database
    )


@pytest.fixture
def session_factory(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    return factory


def client_for(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    """An in-process client, authenticated with `key` when given."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Caller `alpha`."""
    async with client_for(app, ALPHA_KEY) as c:
        yield c


@pytest.fixture
async def beta_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Caller `beta`."""
    async with client_for(app, BETA_KEY) as c:
        yield c


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """No credentials (EvoLink's callbacks, probes)."""
    async with client_for(app, None) as c:
        yield c


@pytest.fixture
def evolink() -> Iterator[respx.MockRouter]:
    """EvoLink faked at the HTTP boundary; routes are added by each test."""
    with respx.mock(base_url=EVOLINK_URL, assert_all_called=False) as router:
        yield router
