"""The `evolink-jobs` console script."""

from __future__ import annotations

import asyncio
from typing import Annotated, NoReturn

import typer
import uvicorn
from pydantic import ValidationError

from app.config import Settings
from app.db import create_engine
from app.logs import configure_logging
from app.main import create_app
from app.migrations import DatabaseNotMigrated, assert_database_at_head, upgrade

cli = typer.Typer(
    help="evolink-jobs: EvoLink image-generation jobs as a service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port to listen on.")]


def fail(message: str) -> NoReturn:
    """Print one readable line to stderr and exit non-zero."""
    typer.echo(f"evolink-jobs: {message}", err=True)
    raise typer.Exit(code=2)


def load_settings() -> Settings:
    """Settings from the environment, or one line naming the bad ones."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        fail(f"invalid settings: {problems}")


@cli.command()
def migrate() -> None:
    """Upgrade the database (DATABASE_URL) to the latest migration."""
    settings = load_settings()
    configure_logging(settings.log_level)
    upgrade(settings.database_url)
    typer.echo("database migrated to head")


@cli.command()
def serve(host: HostOption = "0.0.0.0", port: PortOption = 8000) -> None:  # noqa: S104
    """Run the API under uvicorn (the database must be migrated)."""
    settings = load_settings()
    missing = settings.missing_for_serving()
    if missing:
        fail(f"missing settings: {', '.join(missing)} (see .env.example)")
    check_migrated(settings.database_url)
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )


def check_migrated(database_url: str) -> None:
    """Exit with one line unless the database is at the latest migration."""

    async def check() -> None:
        engine = create_engine(database_url)
        try:
            await assert_database_at_head(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(check())
    except DatabaseNotMigrated as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot reach the database: {exc}")


def main() -> None:
    """Entry point of the console script."""
    cli()


if __name__ == "__main__":
    main()
