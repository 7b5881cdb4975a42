"""Outage or bug: real errors from real databases, classified by what they mean."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy
from sqlalchemy import create_engine, make_url, text

from app.errors import is_database_unavailable


def test_a_locked_sqlite_database_is_unavailable(tmp_path: Path) -> None:
    """SQLITE_BUSY: another writer holds the lock past the busy timeout."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    holder = create_engine(url, isolation_level="AUTOCOMMIT")
    waiter = create_engine(url, connect_args={"timeout": 0}, isolation_level="AUTOCOMMIT")
    with holder.connect() as held, waiter.connect() as blocked:
        held.exec_driver_sql("BEGIN IMMEDIATE")
        with pytest.raises(sqlalchemy.exc.OperationalError) as raised:
            blocked.exec_driver_sql("BEGIN IMMEDIATE")
        held.exec_driver_sql("ROLLBACK")
    assert "locked" in str(raised.value)
    assert is_database_unavailable(raised.value)


def test_a_missing_sqlite_table_is_a_bug(tmp_path: Path) -> None:
    """SQLite reports it as OperationalError too, but it is SQLITE_ERROR: our schema is wrong."""
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with engine.connect() as connection, pytest.raises(sqlalchemy.exc.OperationalError) as raised:
        connection.execute(text("SELECT * FROM jobs"))
    assert not is_database_unavailable(raised.value)


def test_a_pool_with_no_free_connection_is_unavailable(tmp_path: Path) -> None:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'pool.db'}", pool_size=1, max_overflow=0, pool_timeout=0.01
    )
    with engine.connect(), pytest.raises(sqlalchemy.exc.TimeoutError) as raised:
        engine.connect()
    assert is_database_unavailable(raised.value)


@pytest.mark.parametrize(
    "error",
    [ValueError("not a database error"), FileNotFoundError(2, "No such file", "x.png")],
)
def test_other_errors_are_bugs(error: Exception) -> None:
    assert not is_database_unavailable(error)


def test_a_refused_connection_is_unavailable() -> None:
    assert is_database_unavailable(ConnectionRefusedError(111, "Connect call failed"))


def _postgres_dsn() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set")
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_a_session_ended_inside_an_asyncpg_transaction_is_unavailable() -> None:
    """The hot paths' bare asyncpg: a backend terminated mid-statement surfaces as the
    transaction's failed ROLLBACK ("the underlying connection is closed"), not as 57P01."""
    worker = await asyncpg.connect(_postgres_dsn())
    admin = await asyncpg.connect(_postgres_dsn())
    try:

        async def sleep_in_a_transaction() -> None:
            async with worker.transaction():
                await worker.execute("SELECT pg_sleep(30)")

        pending = asyncio.create_task(sleep_in_a_transaction())
        for _ in range(500):
            await admin.execute("SELECT pg_stat_clear_snapshot()")
            if await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
                worker.get_server_pid(),
            ):
                break
            await asyncio.sleep(0.01)
        await admin.execute("SELECT pg_terminate_backend($1)", worker.get_server_pid())
        with pytest.raises(asyncpg.InterfaceError) as raised:
            await pending
        assert is_database_unavailable(raised.value)
    finally:
        worker.terminate()
        await admin.close()


async def test_an_asyncpg_syntax_error_inside_a_transaction_is_a_bug() -> None:
    connection = await asyncpg.connect(_postgres_dsn())
    try:
        with pytest.raises(asyncpg.PostgresSyntaxError) as raised:
            async with connection.transaction():
                await connection.execute("SELEC 1")
        assert not is_database_unavailable(raised.value)
    finally:
        await connection.close()
