"""Migrations: up from empty, in step with the models, down to empty and up again."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import Base
from app.migrations import downgrade, head_revisions, upgrade
from tests.support import databases


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = url + "_migrations"  # beside the suite's own database, never shared between suites
    databases.reset_postgres(url)
    return url


def _inspect(url: str) -> tuple[set[str], list[object], set[str]]:
    def look(connection: Connection) -> tuple[set[str], list[object], set[str]]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        return set(inspect(connection).get_table_names()), diff, set(context.get_current_heads())

    async def run() -> tuple[set[str], list[object], set[str]]:
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            result = await connection.run_sync(look)
        await engine.dispose()
        return result

    return asyncio.run(run())


def test_up_down_up(empty_database: str) -> None:
    upgrade(empty_database)
    tables, diff, heads = _inspect(empty_database)
    assert {"jobs", "job_events"} <= tables
    assert diff == [], f"models and migrations disagree: {diff}"
    assert heads == head_revisions()

    downgrade(empty_database, "base")
    tables, _, heads = _inspect(empty_database)
    assert tables <= {"alembic_version"}
    assert heads == set()

    upgrade(empty_database)
    tables, diff, heads = _inspect(empty_database)
    assert {"jobs", "job_events"} <= tables and diff == [] and heads == head_revisions()
