"""Expected failures as an AppError hierarchy, rendered as RFC 9457 problem+json."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

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
# What the database driver raises when the database cannot be reached or stops answering.
DATABASE_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    OSError,
    TimeoutError,
)


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


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    # 503 with Retry-After: callers (and EvoLink's callback retries) come back, and nothing was
    # acknowledged that was not stored.
    log.warning("database_unavailable", error_type=type(exc).__name__)
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
    for exc_type in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_type, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
