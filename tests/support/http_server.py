"""A small real HTTP server a test scripts per path: image sources, redirects, faults."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.support.processes import free_port

Handler = Callable[[Request], Awaitable[Response]]


class ScriptedServer:
    """Answers each path with its handler (404 otherwise) and counts the requests per path."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.hits: dict[str, int] = {}
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str, handler: Handler) -> str:
        """Serve `path` with `handler`; its absolute URL."""
        self.handlers[path] = handler
        self.hits[path] = 0
        return self.url + path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = request.url.path
        self.hits[path] = self.hits.get(path, 0) + 1
        handler = self.handlers.get(path)
        response = await handler(request) if handler else Response("no", status_code=404)
        await response(scope, receive, send)


@contextmanager
def serving(app: ScriptedServer) -> Iterator[ScriptedServer]:
    """Run `app` under uvicorn on 127.0.0.1 in a thread of its own, until the block ends."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=app.port, log_level="warning", lifespan="off",
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("test HTTP server did not start")
        threading.Event().wait(0.01)
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(10)
