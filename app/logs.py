"""Structured logging (one JSON object per line, with request, caller, job and task ids) and the
per-request middleware that logs and counts every request."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import TextIO

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID_HEADER = "x-request-id"

access_log = structlog.get_logger("app.access")


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """One JSON object per line, from structlog and the standard library (uvicorn, sqlalchemy).

    Our own events are rendered and written by structlog directly (a request's access line
    costs a fifth of what it did through the standard library's records and handlers); other
    libraries' records go through a handler that renders them the same way.
    """
    out = _Output.file = stream or sys.stderr
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=LineLogger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn's access log line carries the full path, and callback paths carry tokens.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)


class _Output:
    """Where every line goes: configure_logging may point it elsewhere after loggers exist."""

    file: TextIO = sys.stderr


class LineLogger:
    """Writes rendered lines to the configured output; `name` is `get_logger`'s argument."""

    def __init__(self, *args: object) -> None:
        self.name = str(args[0]) if args else ""

    def msg(self, message: str) -> None:
        _Output.file.write(message + "\n")
        _Output.file.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class RequestContextMiddleware:
    """Give each request an id (ours or the caller's X-Request-ID), bind it to logs, echo it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            HTTP_REQUESTS.labels(method=scope["method"], route=route, status=status).inc()
            HTTP_LATENCY.labels(method=scope["method"], route=route).observe(seconds)
            access_log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                seconds=round(seconds, 4),
            )


def route_template(scope: Scope) -> str:
    """The matched route's template (never the raw path, which may carry a callback token)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            text: str = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return text
    return None
