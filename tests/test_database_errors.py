"""Outage or bug: real errors from real databases, classified by what they mean."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import create_engine, text

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
