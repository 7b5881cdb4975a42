"""The `evolink-jobs` console script."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, NoReturn, Protocol, runtime_checkable

import typer
from pydantic import ValidationError
from typer.exceptions import TyperException

from app.archive import maintenance as archive_maintenance
from app.config import Settings
from app.console.commands import register as register_console_commands
from app.console.usage import register as register_usage_command
from app.db import create_engine
from app.devmode import DevPlan, banner, dev_settings, enable_console_link, running_simulator
from app.jobs import purge as jobs_purge
from app.logs import configure_logging
from app.main import create_app
from app.migrations import DatabaseNotMigrated, assert_database_at_head, upgrade
from app.server.run import run_app
from app.simulator import SimulatorConfig
from app.simulator import run as run_simulator
from app.simulator.config import error_shapes
from app.worker.standalone import run_worker_alone

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
def serve(
    host: HostOption = "0.0.0.0",  # noqa: S104 - a container's service listens on all interfaces
    port: PortOption = 8000,
    worker: Annotated[
        bool, typer.Option(help="Also run background work (polls, retries) in this process.")
    ] = True,
    callbacks_port: Annotated[
        int | None,
        typer.Option(
            help="Also listen here for EvoLink's callbacks alone (default CALLBACKS_PORT)."
        ),
    ] = None,
) -> None:
    """Run the API under uvicorn (the database must be migrated)."""
    settings = ready_settings()
    configure_logging(settings.log_level)
    app = create_app(settings, run_worker=worker)
    run_app(app, host, port, settings, callbacks_port or settings.callbacks_port)


@cli.command("worker")
def worker_command() -> None:
    """Run background work alone: submit queued jobs, poll overdue ones, apply deadlines."""
    settings = ready_settings()
    configure_logging(settings.log_level)
    asyncio.run(run_worker_alone(settings))


@cli.command()
def archive(
    backfill: Annotated[
        bool, typer.Option(help="Archive completed jobs that have no copies and whose links work.")
    ] = False,
    purge_expired: Annotated[
        bool, typer.Option(help="Delete images older than ARCHIVE_RETENTION_DAYS now.")
    ] = False,
) -> None:
    """Operate the results archive (the worker does both on its own, too)."""
    settings = load_settings()
    configure_logging(settings.log_level)
    if not backfill and not purge_expired:
        fail("say what to do: --backfill and/or --purge-expired")
    if settings.archive_url == "off":
        fail("archiving is off (ARCHIVE_URL=off)")
    check_migrated(settings.database_url)
    if backfill:
        queued = asyncio.run(archive_maintenance.backfill(settings))
        typer.echo(f"{queued} completed jobs queued for archiving (the worker archives them)")
    if purge_expired:
        if settings.archive_retention_days is None:
            fail("ARCHIVE_RETENTION_DAYS is not set: archived images are kept forever")
        purged = asyncio.run(archive_maintenance.purge_expired(settings))
        typer.echo(f"{purged} archived images expired and deleted")


@cli.command()
def purge(
    finished_before: Annotated[
        str,
        typer.Option(
            help="Delete jobs that finished longer ago than this: 30d, 12h, 90m, 45s or 2w."
        ),
    ],
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Jobs deleted per short transaction.")
    ] = jobs_purge.DEFAULT_BATCH_SIZE,
) -> None:
    """Delete finished jobs, their events and archived images (nothing is deleted otherwise)."""
    try:
        age = jobs_purge.parse_duration(finished_before)
    except jobs_purge.DurationInvalid as exc:
        fail(f"--finished-before: {exc}")
    settings = load_settings()
    configure_logging(settings.log_level)
    check_migrated(settings.database_url)
    purged = asyncio.run(jobs_purge.purge(settings, age, batch_size))
    typer.echo(f"{purged} finished jobs purged (finished more than {finished_before} ago)")


@cli.command()
def simulator(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8090,
    task_seconds: Annotated[float, typer.Option(help="How long each task takes.")] = 3.0,
    api_key: Annotated[
        str | None, typer.Option(help="Accept only this bearer key (default: any).")
    ] = None,
    result_ttl_seconds: Annotated[
        float, typer.Option(help="How long result image URLs work (EvoLink: 24 h).")
    ] = 86_400.0,
    task_ttl_seconds: Annotated[
        float | None,
        typer.Option(help="How long an ended task stays readable (default: forever)."),
    ] = None,
    allow_insecure_callbacks: Annotated[
        bool,
        typer.Option(
            help="Accept http:// and internal callback URLs (EvoLink refuses them): dev and tests."
        ),
    ] = False,
    error_shape: Annotated[
        str,
        typer.Option(
            help="Shape of forced errors a fault leaves open: alternate, random, string, integer."
        ),
    ] = "alternate",
    error_seed: Annotated[
        int | None, typer.Option(help="Seed for --error-shape random (default: unseeded).")
    ] = None,
) -> None:
    """Run the EvoLink simulator: a local stand-in for EvoLink, for development and tests."""
    try:
        config = SimulatorConfig(
            api_key=api_key,
            task_seconds=task_seconds,
            result_ttl_seconds=result_ttl_seconds,
            task_ttl_seconds=task_ttl_seconds,
            strict_callbacks=not allow_insecure_callbacks,
            error_shape=error_shapes(error_shape),
            error_seed=error_seed,
        )
    except ValueError as exc:
        fail(str(exc))
    run_simulator(config, host, port)


@cli.command()
def dev(
    port: PortOption = 8000,
    simulator_port: Annotated[int | None, typer.Option(help="Default: --port + 1.")] = None,
    task_seconds: Annotated[float, typer.Option(help="How long simulated tasks take.")] = 3.0,
    data_dir: Annotated[Path, typer.Option(help="Where the database and keys live.")] = Path(
        ".dev"
    ),
) -> None:
    """Run everything locally: SQLite, migrations, the simulator, the API and background work."""
    plan = DevPlan(data_dir.resolve(), "127.0.0.1", port, simulator_port or port + 1, task_seconds)
    # uvicorn re-raises SIGTERM once it has shut down; make it unwind like Ctrl-C so that the
    # simulator child is stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    settings = dev_settings(plan)
    configure_logging("WARNING")
    upgrade(settings.database_url)
    try:
        with running_simulator(plan):
            app = create_app(settings)
            typer.echo(banner(plan, settings, enable_console_link(app, plan)))
            run_app(app, plan.host, plan.port, settings)
    except RuntimeError as exc:
        fail(str(exc))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def ready_settings() -> Settings:
    """Settings for `serve` and `worker`: complete, and a database at the latest migration."""
    settings = load_settings()
    missing = settings.missing_for_serving()
    if missing:
        fail(f"missing settings: {', '.join(missing)} (see .env.example)")
    check_migrated(settings.database_url)
    return settings


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


register_console_commands(cli)
register_usage_command(cli)


def main() -> None:
    """Entry point of the console script: usage errors are one readable line, not a box."""
    command = typer.main.get_command(cli)
    try:
        status = command.main(prog_name="evolink-jobs", standalone_mode=False)
    except typer.Abort:
        typer.echo("evolink-jobs: interrupted", err=True)
        raise SystemExit(130) from None
    except TyperException as exc:  # bad options or arguments, as the parser found them
        message = exc.format_message() if isinstance(exc, UsageFormatting) else str(exc)
        typer.echo(f"evolink-jobs: {message} (see --help)", err=True)
        raise SystemExit(getattr(exc, "exit_code", 2)) from None
    raise SystemExit(status if isinstance(status, int) else 0)


@runtime_checkable
class UsageFormatting(Protocol):
    def format_message(self) -> str: ...


if __name__ == "__main__":
    main()
