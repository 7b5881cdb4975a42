"""The SQLSTATE decides, even when the server reports it as a plain ERROR (not FATAL)."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest
import sqlalchemy
from sqlalchemy import text

from app.db import create_engine
from app.errors import is_database_unavailable
from tests.support.pg_cluster import PostgresCluster


@pytest.mark.parametrize(
    ("sqlstate", "unavailable"),
    [
        ("53100", True),  # disk_full
        ("53200", True),  # out_of_memory
        ("08006", True),  # connection_failure
        ("57P01", True),  # admin_shutdown
        ("57014", False),  # query_canceled: a statement timeout is not an outage
        ("22012", False),  # division_by_zero: our bug
        ("23505", False),  # unique_violation: handled where it is expected, else a bug
    ],
)
async def test_a_server_error_is_classified_by_its_sqlstate(
    healthy_cluster: PostgresCluster, sqlstate: str, unavailable: bool
) -> None:
    engine = create_engine(healthy_cluster.url())
    try:
        async with engine.connect() as connection:
            with pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
                await connection.execute(
                    text(
                        "DO $$ BEGIN RAISE EXCEPTION 'raised by the test' "
                        f"USING ERRCODE = '{sqlstate}'; END $$"
                    )
                )
    finally:
        await engine.dispose()
    assert getattr(raised.value.orig, "sqlstate", None) == sqlstate
    assert is_database_unavailable(raised.value) is unavailable


async def test_a_connection_found_closed_mid_transaction_is_unavailable(
    healthy_cluster: PostgresCluster,
) -> None:
    """Our session terminated between two statements: no SQLSTATE, only a dead connection."""
    engine = create_engine(healthy_cluster.url())
    try:
        async with engine.connect() as connection:
            pid = await connection.scalar(text("SELECT pg_backend_pid()"))
            await healthy_cluster.execute("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
                for _ in range(50):  # until the driver has read the server's goodbye
                    await connection.execute(text("SELECT 1"))
                    await asyncio.sleep(0.02)
    finally:
        await engine.dispose()
    assert raised.value.connection_invalidated
    assert is_database_unavailable(raised.value)


@pytest.mark.parametrize("code", [errno.ENETUNREACH, errno.EHOSTUNREACH])
def test_an_unreachable_network_is_unavailable(code: int) -> None:
    """What asyncio raises when no route leads to the database host (a plain OSError)."""
    error = OSError(code, os.strerror(code))
    assert type(error) is OSError
    assert is_database_unavailable(error)
