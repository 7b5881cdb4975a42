"""The only code that knows EvoLink's URLs, authentication and error shapes."""

from __future__ import annotations

import email.utils
import time
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from pydantic import SecretStr, ValidationError

from app.evolink.errors import (
    EvolinkAuthFailed,
    EvolinkError,
    EvolinkOutcomeUnknown,
    EvolinkOutOfCredits,
    EvolinkRateLimited,
    EvolinkRequestRejected,
    EvolinkTaskNotFound,
    EvolinkTimeout,
    EvolinkUnavailable,
)
from app.evolink.schemas import ApiErrorBody, CreateTaskRequest, Credits, Task
from app.metrics import EVOLINK_LATENCY, EVOLINK_REQUESTS

CREATE_PATH = "/v1/images/generations"
TASK_PATH = "/v1/tasks/{task_id}"
CREDITS_PATH = "/v1/credits"
CONNECT_TIMEOUT_SECONDS = 5.0
SIMULATOR_HEALTH_PATH = "/_sim/health"

log = structlog.get_logger(__name__)


def build_http_client(
    base_url: str, timeout_seconds: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one HTTP client used for EvoLink, with explicit timeouts."""
    timeout = httpx.Timeout(timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds))
    return httpx.AsyncClient(
        base_url=base_url, timeout=timeout, follow_redirects=False, transport=transport
    )


class EvolinkClient:
    """Typed calls to EvoLink's task API; every failure is an EvolinkError subclass."""

    def __init__(self, http: httpx.AsyncClient, api_key: SecretStr) -> None:
        self._http = http
        self._api_key = api_key

    async def create_task(self, request: CreateTaskRequest) -> Task:
        """Submit a generation task; raises an EvolinkError that says whether it may have run."""
        body = request.model_dump(exclude_none=True)
        response = await self._send("create_task", "POST", CREATE_PATH, json=body)
        return _parse_task(response)

    async def get_task(self, task_id: str) -> Task:
        """Read a task's current state.

        The id is one path segment, encoded as such whatever it holds: a stored id must never
        steer the request (with our key) to another path on EvoLink's host.
        """
        # Dots too: `..` alone is a segment that URL normalisation would resolve.
        path = TASK_PATH.format(task_id=quote(task_id, safe="").replace(".", "%2E"))
        response = await self._send("get_task", "GET", path)
        return _parse_task(response)

    async def get_credits(self) -> Credits:
        """The balances of this service's key and account."""
        response = await self._send("get_credits", "GET", CREDITS_PATH)
        try:
            return Credits.model_validate_json(response.content)
        except ValidationError as exc:
            raise EvolinkOutcomeUnknown(
                f"EvoLink answered {response.status_code} with a body that is not a balance",
                status=response.status_code,
            ) from exc

    async def is_simulator(self) -> bool:
        """Whether the base URL answers like `evolink-jobs simulator` (never real EvoLink)."""
        try:
            response = await self._http.get(SIMULATOR_HEALTH_PATH, timeout=2.0)
            return response.status_code == 200 and response.json().get("simulator") is True
        except Exception:  # a probe must never stop start-up, whatever answers
            return False

    async def _send(
        self, operation: str, method: str, path: str, json: Any = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}
        started = time.perf_counter()
        try:
            try:
                response = await self._http.request(method, path, json=json, headers=headers)
            finally:
                EVOLINK_LATENCY.labels(operation=operation).observe(time.perf_counter() - started)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            _count(operation, "error", type(exc).__name__)
            raise EvolinkUnavailable(f"EvoLink could not be reached: {type(exc).__name__}") from exc
        except httpx.TimeoutException as exc:
            _count(operation, "error", type(exc).__name__)
            raise EvolinkTimeout(f"EvoLink did not answer in time: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            _count(operation, "error", type(exc).__name__)
            raise EvolinkOutcomeUnknown(
                f"the connection to EvoLink failed: {type(exc).__name__}"
            ) from exc
        log.info(
            "evolink_call",
            operation=operation,
            status=response.status_code,
            seconds=round(time.perf_counter() - started, 4),
        )
        if response.is_success:
            _count(operation, str(response.status_code), "")
            return response
        error = _classify(response)
        _count(operation, str(response.status_code), error.code or "")
        raise error


def _count(operation: str, status: str, code: str) -> None:
    EVOLINK_REQUESTS.labels(operation=operation, status=status, code=code).inc()


def _parse_task(response: httpx.Response) -> Task:
    try:
        return Task.model_validate_json(response.content)
    except ValidationError as exc:
        raise EvolinkOutcomeUnknown(
            f"EvoLink answered {response.status_code} with a body that is not a task",
            status=response.status_code,
        ) from exc


def _classify(response: httpx.Response) -> EvolinkError:
    status = response.status_code
    code, message = _error_details(response)
    kwargs: dict[str, Any] = {"status": status, "code": code}
    text = f"EvoLink answered {status}: {message}"
    if status in (401, 403):
        return EvolinkAuthFailed(text, **kwargs)
    if status == 402:
        return EvolinkOutOfCredits(text, **kwargs)
    if status == 404:
        return EvolinkTaskNotFound(text, **kwargs)
    if status == 429:
        return EvolinkRateLimited(text, retry_after=_retry_after(response), **kwargs)
    if status == 503:
        return EvolinkUnavailable(text, **kwargs)
    if 400 <= status < 500:
        return EvolinkRequestRejected(text, **kwargs)
    return EvolinkOutcomeUnknown(text, **kwargs)


def _error_details(response: httpx.Response) -> tuple[str | None, str]:
    """EvoLink's (code, message) from either error generation; a string code wins over a type."""
    try:
        error = ApiErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return None, response.reason_phrase or "no error body"
    code = error.code if isinstance(error.code, str) else error.type
    return code, error.message or response.reason_phrase or "no message"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
