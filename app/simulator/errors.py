"""EvoLink's HTTP error bodies (both generations of shape) and task error messages."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

JsonObject = dict[str, Any]

# Create-request failures a fault can force, by HTTP status.
FORCEABLE_STATUSES = frozenset({400, 401, 402, 403, 404, 413, 429, 500, 502, 503})

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
    """An HTTP error answered in one of EvoLink's error shapes."""

    def __init__(
        self, status: int, error: JsonObject, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status}: {error.get('message')}")
        self.status = status
        self.error = error
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """Render as EvoLink renders it: `{"error": {...}}`."""
        return JSONResponse({"error": self.error}, status_code=self.status, headers=self.headers)


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


def forced(status: int, retry_after: int | None, default_retry_after: int) -> SimError:
    """The error a `create=<status>` fault answers with; 429 and 503 use the older integer shape.

    429 always carries Retry-After (the given value or the default); 503 only when one is given.
    """
    if status == 400:
        return invalid_request("Invalid request (simulated).")
    if status == 401:
        return unauthorized()
    if status == 402:
        return insufficient_quota()
    if status == 429:
        seconds = default_retry_after if retry_after is None else retry_after
        error = {
            "code": 429,
            "message": "Rate limit exceeded",
            "type": "rate_limit_error",
            "fallback_suggestion": f"retry after {seconds} seconds",
        }
        return SimError(429, error, {"Retry-After": str(seconds)})
    if status == 503:
        # EvoLink's older pages suggest 30 s for a 503.
        suggested = 30 if retry_after is None else retry_after
        error = {
            "code": 503,
            "message": "Service temporarily unavailable",
            "type": "service_unavailable_error",
            "fallback_suggestion": f"retry after {suggested} seconds",
        }
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return SimError(503, error, headers)
    return SimError(status, _OTHER_ERRORS[status])


_OTHER_ERRORS: dict[int, JsonObject] = {
    403: {
        "code": "model_access_denied",
        "message": "You do not have access to this model.",
        "type": "permission_error",
    },
    404: {"code": 404, "message": "Not found", "type": "invalid_request_error"},
    413: {"code": 413, "message": "Request entity too large", "type": "invalid_request_error"},
    500: {"code": "internal_error", "message": "Internal server error", "type": "api_error"},
    502: {"code": 502, "message": "Bad gateway", "type": "upstream_error"},
}
