"""Preparing real test databases (never mocks)."""

from __future__ import annotations

import asyncio

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.migrations import upgrade


def redact(url: str) -> str:
    """A database URL safe to print."""
    return make_url(url).render_as_string(hide_password=True)


def reset_postgres(url: str) -> None:
    """Create the database if needed and drop everything in it."""
    asyncio.run(_reset_postgres(url))


async def _reset_postgres(url: str) -> None:
    target = make_url(url)
    admin = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        exists = await connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
        )
        if not exists:
            await connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    await admin.dispose()
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def migrate(url: str) -> None:
    """Upgrade a database to head."""
    upgrade(url)
