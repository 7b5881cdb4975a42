"""The one place an unexpected exception is logged: once, with its trace, then answered 500.

Starlette's outermost middleware answers an unhandled exception with the app's 500 handler and
then raises it again for the server to log: every bug was logged twice, the second time by
uvicorn, outside our JSON logs and request context. This middleware sits inside the request
context and ends the exception there.
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem

log = structlog.get_logger("app.errors")


class UnexpectedErrors:
    """Log an exception no handler took, once, and answer an opaque 500 if nothing was sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception("unhandled_error", error_type=type(exc).__name__)
            if not started:
                response = problem(
                    500, "internal_error", "Internal error", "An unexpected error occurred."
                )
                await response(scope, receive, send)
