"""Run the simulator under uvicorn."""

from __future__ import annotations

import contextlib
import socket
import sys

import uvicorn

from app.simulator.app import create_simulator_app
from app.simulator.config import SimulatorConfig


def build_server(config: SimulatorConfig, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the simulator (not started)."""
    app = create_simulator_app(config)
    uvicorn_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        # Hanging create requests would otherwise hold shutdown for hang_seconds.
        timeout_graceful_shutdown=config.shutdown_grace_seconds,
    )
    return uvicorn.Server(uvicorn_config)


def run(config: SimulatorConfig, host: str, port: int) -> None:
    """Serve the simulator until interrupted."""
    shown_host = f"[{host}]" if ":" in host else host
    callbacks = "HTTPS public" if config.strict_callbacks else "any http(s), insecure"
    # The one line a person starting it must see, whatever the log configuration.
    print(
        f"EvoLink SIMULATOR (not EvoLink) on http://{shown_host}:{port} - "
        f"tasks take {config.task_seconds:g} s, callback URLs: {callbacks}, "
        "control API at /_sim/, see docs/simulator.md",
        file=sys.stderr,
        flush=True,
    )
    # uvicorn re-raises Ctrl-C after a clean shutdown; for a console command that is just the end.
    with contextlib.suppress(KeyboardInterrupt):
        build_server(config, host, port).run()


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound TCP socket (port 0: any free port) to pass to `uvicorn.Server.serve(sockets=...)`."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock
