"""Bounds on what a request may cost before the app sees it: its body's size and pace, and a key.

An oversized or unauthenticated `POST /v1/...` is refused before its body is read, so a stranger
cannot make the service buffer and parse megabytes (each refusal is problem+json).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.callers import Caller
from app.config import Settings
from app.errors import UNAUTHENTICATED_DETAIL, AppError, Unauthenticated, problem_response

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
AUTHENTICATED_PREFIX = "/v1/"


class RequestTooLarge(AppError):
    status, code, title = 413, "request_too_large", "Request body too large"


class RequestTimeout(AppError):
    status, code, title = 408, "request_timeout", "Request body too slow"


class BodyRefused(StarletteHTTPException):
    """Raised from `receive` while the app reads a body; FastAPI lets HTTPExceptions through."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.status, error.detail)
        self.error = error


class RequestLimits:
    """Refuse bodies over `max_bytes` (413), bodies that stall (408), and keyless writes (401).

    `authenticate` maps a presented bearer key to its caller; the caller found is left in
    `scope["state"]["caller"]` so that the route's own dependency need not hash the key again.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        body_timeout: float,
        authenticate: Callable[[str], Caller | None],
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            response = problem_response(refusal, {"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), timeout=self.body_timeout)
            except TimeoutError:
                raise BodyRefused(
                    RequestTimeout(f"No body data arrived for {self.body_timeout:g} s.")
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyRefused(self._too_large())
            return message

        await self.app(scope, bounded_receive, send)

    def _refusal(self, scope: Scope) -> AppError | None:
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return self._too_large()
        if scope["path"].startswith(AUTHENTICATED_PREFIX):
            scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            caller = self.authenticate(key.strip()) if scheme.lower() == "bearer" else None
            if caller is None:
                return Unauthenticated(UNAUTHENTICATED_DETAIL)
            scope.setdefault("state", {})["caller"] = caller
        return None

    def _too_large(self) -> RequestTooLarge:
        return RequestTooLarge(
            f"The request body is over {self.max_bytes} bytes.", max_bytes=self.max_bytes
        )


async def _body_refused(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyRefused)
    return problem_response(exc.error, {"Connection": "close"})


def install_request_limits(app: FastAPI, settings: Settings) -> None:
    """Bound every request's body (size, pace) and authenticate writes before reading them."""
    app.add_middleware(
        RequestLimits,
        max_bytes=settings.max_request_bytes,
        body_timeout=settings.request_body_timeout_seconds,
        authenticate=settings.callers.authenticate,
    )
    app.add_exception_handler(BodyRefused, _body_refused)
