"""A real service for the console: the API and the EvoLink simulator on uvicorn, over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
import typer
import uvicorn

from app.console.commands import register
from app.main import create_app
from app.simulator import SimulatorConfig
from app.simulator.server import bind_socket, build_server
from tests.conftest import ALPHA_KEY, make_settings
from tests.support.databases import migrate


@dataclass(frozen=True)
class Service:
    """Where the console's service runs, and the simulator standing in for EvoLink."""

    url: str
    simulator_url: str


@contextlib.contextmanager
def serving(server: uvicorn.Server, sock: socket.socket) -> Iterator[None]:
    """Serve on `sock` in a background thread until the block ends."""
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    # uvicorn offers a flag, not an event, to say it is listening.
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting (see the captured log)"
        assert time.monotonic() < deadline, "the server did not start within 10 s"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@contextlib.contextmanager
def logs_to(path: Path) -> Iterator[None]:
    """Send structlog's output to a file while the servers run.

    Unconfigured, structlog prints to whatever `sys.stdout` is at each call, and CliRunner swaps
    that for its own buffer: the servers' threads would write into the console's output.
    """
    saved = structlog.get_config()
    with path.open("w") as log_file:
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=log_file))
        try:
            yield
        finally:
            structlog.configure(**saved)


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The API (with its background worker) on SQLite, EvoLink simulated; tasks take 0.3 s."""
    directory = tmp_path_factory.mktemp("console")
    database_url = f"sqlite+aiosqlite:///{directory / 'jobs.db'}"
    migrate(database_url)
    simulator_socket = bind_socket()
    api_socket = bind_socket()
    simulator_url = f"http://127.0.0.1:{simulator_socket.getsockname()[1]}"
    api_url = f"http://127.0.0.1:{api_socket.getsockname()[1]}"
    simulator = build_server(SimulatorConfig(task_seconds=0.3), "127.0.0.1", 0)
    settings = make_settings(
        database_url,
        evolink_base_url=simulator_url,
        public_base_url=api_url,
        allow_insecure_callbacks=True,
        archive_url=f"file://{directory / 'archive'}",
        archive_allow_private_networks=True,
    )
    api = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", access_log=False)
    )
    with (
        logs_to(directory / "server.log"),
        serving(simulator, simulator_socket),
        serving(api, api_socket),
    ):
        yield Service(url=api_url, simulator_url=simulator_url)


@pytest.fixture
def console() -> typer.Typer:
    """A root command with the console's commands, as app/cli.py wires them."""
    root = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    register(root)
    return root


@pytest.fixture
def env(service: Service) -> dict[str, str | None]:
    """The console's environment: the service's URL and caller alpha's key."""
    return {"EVOLINK_JOBS_URL": service.url, "EVOLINK_JOBS_API_KEY": ALPHA_KEY}
