"""Running Alembic from the application: upgrade, and check the schema is at head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations as migrations_package

MIGRATIONS_DIR = Path(migrations_package.__file__).parent


class DatabaseNotMigrated(Exception):
    """The database schema is not at the latest migration."""


def alembic_config(database_url: str) -> Config:
    """An Alembic config for our migrations against `database_url`, independent of the cwd."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the database to `revision` (runs its own event loop: call outside one)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Downgrade the database to `revision`."""
    command.downgrade(alembic_config(database_url), revision)


def head_revisions() -> set[str]:
    """The revisions a fully migrated database is at."""
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def _current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def assert_database_at_head(engine: AsyncEngine) -> None:
    """Raise DatabaseNotMigrated unless the schema is at the latest migration."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_current_revisions)
    if current != head_revisions():
        found = ", ".join(sorted(current)) or "empty"
        raise DatabaseNotMigrated(
            f"database is not migrated (at {found}); run `evolink-jobs migrate` first"
        )
