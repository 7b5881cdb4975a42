"""Running the app under uvicorn: one server, the API's socket and maybe a callbacks-only one.

With `CALLBACKS_PORT` set, the service listens twice: the API port (for internal callers, never
to be exposed) and a port that answers `/callbacks/...` alone, which is all EvoLink needs and the
only thing to expose to the internet.
"""

from __future__ import annotations

import contextlib
import socket

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.errors import ResourceNotFound, problem_response
from app.server.protocol import bounded_protocol

CALLBACKS_PREFIX = "/callbacks/"


class CallbacksOnlyOn:
    """Answer 404 to anything but `/callbacks/...` that arrives on the callbacks port."""

    def __init__(self, app: ASGIApp, callbacks_port: int) -> None:
        self.app = app
        self.callbacks_port = callbacks_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") if scope["type"] in ("http", "websocket") else None
        if (
            server is not None
            and server[1] == self.callbacks_port
            and not scope["path"].startswith(CALLBACKS_PREFIX)
        ):
            refusal = ResourceNotFound("This port serves EvoLink's callbacks only.")
            await problem_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn to serve on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def run_app(
    app: ASGIApp, host: str, port: int, settings: Settings, callbacks_port: int | None = None
) -> None:
    """Serve `app` until SIGTERM or Ctrl-C, finishing requests in flight."""
    sockets = [listening_socket(host, port)]
    if callbacks_port is not None:
        sockets.append(listening_socket(host, callbacks_port))
        app = CallbacksOnlyOn(app, callbacks_port)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        http=bounded_protocol(settings),
        timeout_graceful_shutdown=round(settings.shutdown_timeout_seconds),
    )
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=sockets)
