"""A private PostgreSQL cluster per test module, driven into real trouble by the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import make_settings
from tests.support import databases, pg_cluster
from tests.support.pg_cluster import DATABASE, PostgresCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server on a free port with a migrated database; always stopped."""
    if not pg_cluster.available():
        pytest.skip(f"initdb and pg_ctl are not in {pg_cluster.PG_BIN}")
    server = PostgresCluster()
    try:
        server.init()
        server.start()
        databases.reset_postgres(server.url())
        databases.migrate(server.url())
        yield server
    finally:
        server.destroy()


@pytest.fixture
async def healthy_cluster(cluster: PostgresCluster) -> PostgresCluster:
    """The cluster up and accepting connections, whatever the previous test left."""
    if not cluster.running():
        cluster.start()
    await cluster.execute(f"ALTER DATABASE {DATABASE} WITH ALLOW_CONNECTIONS true")
    return cluster


@pytest.fixture
def settings(healthy_cluster: PostgresCluster) -> Settings:
    return make_settings(healthy_cluster.url(), verify_callbacks=False)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app on the private cluster, background work driven by the test."""
    application = create_app(settings, run_worker=False)
    async with LifespanManager(application):
        yield application
