"""EvoLink's HTTP error bodies (both generations of shape), gateway pages, task error messages."""

from __future__ import annotations

import html
from typing import Any, Literal

from starlette.responses import HTMLResponse, JSONResponse, Response

JsonObject = dict[str, Any]
Shape = Literal["string", "integer"]
Body = Literal["json", "html", "empty"]

# Create-request failures a fault can force, by HTTP status.
FORCEABLE_STATUSES = frozenset({400, 401, 402, 403, 404, 413, 429, 500, 502, 503})
# Poll failures a fault can force: the same, and the 504 a gateway gives up with.
POLL_STATUSES = FORCEABLE_STATUSES | {504}

# Each status's string code, message and type; the older shape puts the status in `code`. The string
# codes for 404, 413, 502, 503 and 504 are not in EvoLink's pages (only their integer shape is):
# they are plausible names, and clients must not depend on them.
_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request", "Invalid request (simulated).", "invalid_request_error"),
    401: (
        "unauthorized",
        "Invalid or missing API key. Use 'Authorization: Bearer <key>'.",
        "authentication_error",
    ),
    402: (
        "insufficient_quota",
        "Insufficient quota. Please top up your account.",
        "insufficient_quota",
    ),
    403: ("model_access_denied", "You do not have access to this model.", "permission_error"),
    404: ("not_found", "Not found", "invalid_request_error"),
    413: ("request_too_large", "Request entity too large", "invalid_request_error"),
    429: ("rate_limit_exceeded", "Rate limit exceeded", "rate_limit_error"),
    500: ("internal_error", "Internal server error", "api_error"),
    502: ("upstream_error", "Bad gateway", "upstream_error"),
    503: ("service_unavailable", "Service temporarily unavailable", "service_unavailable_error"),
    504: ("gateway_timeout", "Gateway timeout", "api_error"),
}
# The shape EvoLink's pages show for each status (the other one is just as possible).
DOCUMENTED_SHAPES: dict[int, Shape] = {
    status: "string" if status in (400, 401, 402, 403, 500) else "integer" for status in _ERRORS
}
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}
TASK_ERROR_MESSAGES: dict[str, str] = {
    "content_policy_violation": "Content policy violation. Please modify your prompt or image.",
    "invalid_parameters": "Invalid parameters.",
    "image_processing_error": "Failed to process the input image.",
    "image_dimension_mismatch": "Image dimensions do not match the request.",
    "request_cancelled": "Request was cancelled.",
    "generation_failed_no_content": "The model generated no content.",
    "service_error": "Internal service error. Please retry later.",
    "generation_timeout": "Generation timed out.",
    "resource_exhausted": "Upstream resources exhausted. Please retry later.",
    "quota_exceeded": "Quota exceeded.",
    "service_unavailable": "Service temporarily unavailable.",
    "unknown_error": "Unknown error.",
}


class SimError(Exception):
    """An HTTP error answered in one of EvoLink's error shapes, or as a gateway's non-JSON body."""

    def __init__(
        self,
        status: int,
        error: JsonObject,
        headers: dict[str, str] | None = None,
        body: Body = "json",
    ) -> None:
        super().__init__(f"{status}: {error.get('message')}")
        self.status = status
        self.error = error
        self.headers = headers or {}
        self.body = body

    def response(self) -> Response:
        """Render as EvoLink renders it (`{"error": {...}}`), or as an HTML page or nothing."""
        if self.body == "html":
            return HTMLResponse(gateway_page(self.status), self.status, self.headers)
        if self.body == "empty":
            return Response(b"", self.status, self.headers)
        return JSONResponse({"error": self.error}, status_code=self.status, headers=self.headers)


def gateway_page(status: int) -> str:
    """The HTML page a gateway (nginx, a load balancer) answers with instead of EvoLink's JSON."""
    title = html.escape(f"{status} {_REASONS.get(status, 'Error')}")
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def task_error_message(code: str) -> str:
    """The message EvoLink gives for a task error code (a generic one for unknown codes)."""
    return TASK_ERROR_MESSAGES.get(code, f"Task failed: {code}")


def invalid_request(message: str, param: str | None = None) -> SimError:
    """400 in the newer, string-code shape."""
    error = {
        "code": "invalid_request",
        "message": message,
        "type": "invalid_request_error",
        "param": param,
    }
    return SimError(400, error)


def unauthorized() -> SimError:
    """401 for a missing or wrong API key."""
    message = "Invalid or missing API key. Use 'Authorization: Bearer <key>'."
    return SimError(
        401, {"code": "unauthorized", "message": message, "type": "authentication_error"}
    )


def insufficient_quota() -> SimError:
    """402 when the account cannot cover the request's reservation."""
    error = {
        "code": "insufficient_quota",
        "message": "Insufficient quota. Please top up your account.",
        "type": "insufficient_quota",
    }
    return SimError(402, error)


def task_not_found() -> SimError:
    """404 for an unknown or expired task id."""
    error = {
        "code": "resource_not_found",
        "message": "Task not found or expired",
        "type": "invalid_request_error",
    }
    return SimError(404, error)


def gateway_timeout() -> SimError:
    """504 sent when a hanging request finally gives up (clients have normally left by then)."""
    return SimError(504, {"code": 504, "message": "Gateway timeout", "type": "api_error"})


def invalid_task_id(task_id: str) -> SimError:
    """400 for a task id that is not shaped like EvoLink's, as EvoLink's task API answers."""
    error = {
        "code": "invalid_task_id",
        "message": f"Invalid task ID format: {task_id[:100]!r}",
        "type": "invalid_request_error",
        "param": "task_id",
    }
    return SimError(400, error)


def forced(
    status: int, shape: Shape, body: Body, retry_after: int | Literal["none"] | None, default: int
) -> SimError:
    """The error a fault forces, in the given shape and body.

    429 carries Retry-After (the given value, else `default`) unless it is "none"; 503 only when
    one is given. Both suggest a wait in the older shape's `fallback_suggestion`.
    """
    code, message, kind = _ERRORS[status]
    error: JsonObject = {"code": code if shape == "string" else status, "message": message}
    error["type"] = kind
    if status == 400:
        error["param"] = None
    seconds: int | None = None
    if status == 429:
        seconds = None if retry_after == "none" else default if retry_after is None else retry_after
    elif status == 503 and isinstance(retry_after, int):
        seconds = retry_after
    if shape == "integer" and status in (429, 503):
        # EvoLink's older pages suggest 60 s after a 429 and 30 s after a 503.
        suggested = seconds if seconds is not None else (60 if status == 429 else 30)
        error["fallback_suggestion"] = f"retry after {suggested} seconds"
    headers = {} if seconds is None else {"Retry-After": str(seconds)}
    return SimError(status, error, headers, body)
