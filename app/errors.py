"""Expected failures as an AppError hierarchy, rendered as RFC 9457 problem+json."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://evolink-jobs.internal/problems/"

log = structlog.get_logger(__name__)


class AppError(Exception):
    """An expected failure: a status, a stable code and a human-readable detail."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}


class Unauthenticated(AppError):
    status, code, title = 401, "unauthenticated", "Missing or unknown API key"


UNAUTHENTICATED_DETAIL = "Send Authorization: Bearer <key> with your caller's API key."


class ResourceNotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class JobNotFound(ResourceNotFound):
    code, title = "job_not_found", "Job not found"


class InvalidCursor(AppError):
    status, code, title = 400, "invalid_cursor", "Invalid pagination cursor"


class ServiceUnavailable(AppError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


DATABASE_RETRY_AFTER_SECONDS = 5
# Where the database driver's errors surface; `is_database_unavailable` tells outages from bugs.
DATABASE_ERRORS = (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError, OSError)

# PostgreSQL SQLSTATEs (Appendix A) that mean the server cannot serve us now, not that our SQL is
# wrong: connection exceptions (08), insufficient resources (53: too many clients, disk full, out
# of memory) and operator intervention ending or refusing sessions (57P01 admin_shutdown, 57P02
# crash_shutdown, 57P03 cannot_connect_now, 57P04 database_dropped, 57P05 idle_session_timeout).
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53"})
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})
# A FATAL (or PANIC) server message ends or refuses the session itself, whatever its SQLSTATE:
# `database … is not currently accepting connections` (55000), an unknown database, a rejected
# login. No statement of ours can cause one.
_SESSION_ENDING_SEVERITIES = frozenset({"FATAL", "PANIC"})
# SQLite primary result codes for a database that is busy or whose storage fails (a syntax error
# or a missing table, SQLITE_ERROR, stays a bug).
_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 8, 10, 13, 14})  # BUSY LOCKED NOMEM READONLY IOERR FULL
#                                                            CANTOPEN
# Network errors that Python raises as a plain OSError (refused, reset, aborted, broken pipe and
# timed out arrive as ConnectionError and TimeoutError subclasses).
_NETWORK_ERRNOS = frozenset(
    {errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EHOSTUNREACH}
)


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot serve us right now (503), rather than a bug (500).

    Decided by what the error means (its SQLSTATE, the server's severity, SQLite's result code,
    the socket error, a dropped or invalidated connection, a pool timeout), looking through the
    driver exceptions SQLAlchemy wraps.
    """
    return any(_means_unavailable(error) for error in _wrapped_chain(exc))


def _wrapped_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return chain


def _means_unavailable(error: BaseException) -> bool:
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return True
    if _closed_under_us(error):
        return True
    if isinstance(error, sqlalchemy.exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS:
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or sqlstate in _UNAVAILABLE_SQLSTATES
    ):
        return True
    if getattr(error, "severity", None) in _SESSION_ENDING_SEVERITIES:
        return True
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    return isinstance(sqlite_code, int) and sqlite_code & 0xFF in _SQLITE_UNAVAILABLE


def _closed_under_us(error: BaseException) -> bool:
    """asyncpg's own word that the session ended mid-operation (the hot paths use asyncpg bare):
    a terminated backend or a dropped socket raises ConnectionDoesNotExistError, and the
    ROLLBACK that follows raises "the underlying connection is closed", hiding the first. This
    is the test SQLAlchemy's asyncpg dialect uses for a disconnect."""
    if not isinstance(error, asyncpg.InterfaceError):
        return False
    return isinstance(error, asyncpg.ConnectionDoesNotExistError) or "connection is closed" in str(
        error
    )


def database_error_fields(exc: BaseException) -> dict[str, str]:
    """What a log line may say about a database error: its type and SQLSTATE (no message)."""
    fields = {"error_type": type(exc).__name__}
    for error in _wrapped_chain(exc):
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str):
            fields["sqlstate"] = sqlstate
            break
    return fields


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """An RFC 9457 problem+json response with our stable `code` member."""
    body = {
        "type": TYPE_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extensions,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(location: Sequence[int | str]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic errors as `{field, message, type}` entries that name each bad field."""
    out = []
    for error in errors:
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":
            message = "the request body is not valid JSON"
        elif error.get("type") == "extra_forbidden":
            message = "unknown field"
        out.append(
            {
                "field": _field_path(error.get("loc", ())),
                "message": message,
                "type": str(error.get("type", "invalid")),
            }
        )
    return out


def problem_response(exc: AppError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The problem+json response for an AppError."""
    merged = {**exc.headers, **(headers or {})}
    return problem(exc.status, exc.code, exc.title, exc.detail, merged, **exc.extensions)


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(exc)


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return problem(
        422, "validation_failed", "Invalid request", f"Invalid fields: {fields}", errors=errors
    )


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    return problem(exc.status_code, code, phrase, detail, dict(exc.headers or {}))


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    answer = database_unavailable(exc)
    if answer is None:
        raise exc  # a bug: the catch-all handler logs it and answers 500
    return answer


def database_unavailable(exc: BaseException) -> JSONResponse | None:
    """The 503 answer to a database error that means an outage (logged); None for a bug."""
    if not is_database_unavailable(exc):
        return None
    # 503 with Retry-After: callers (and EvoLink's callback retries) come back, and nothing was
    # acknowledged that was not stored.
    log.warning("database_unavailable", **database_error_fields(exc))
    return problem(
        503,
        "database_unavailable",
        "Database unavailable",
        "The service cannot reach its database right now; retry shortly.",
        {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", error_type=type(exc).__name__)
    return problem(500, "internal_error", "Internal error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the app can produce as problem+json."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    for exc_type in DATABASE_ERRORS:
        app.add_exception_handler(exc_type, _database_error)
    app.add_exception_handler(Exception, _unexpected)
