"""A small typed client for the jobs REST API, for the operator console.

Every failure surfaces as one `ConsoleError` whose message fits on one line.
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NotRequired, Self, TypedDict, cast
from urllib.parse import urlsplit

import httpx

DEFAULT_TIMEOUT_SECONDS = 10.0
# A stream is silent between events but for heartbeats (every 15 s by default).
STREAM_READ_TIMEOUT_SECONDS = 60.0
USAGE_EXIT_CODE = 2
KEY_HINT = "check --api-key or EVOLINK_JOBS_API_KEY"


class ConsoleError(Exception):
    """An expected failure, told to the operator in one line; `exit_code` 2 means bad input."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class StreamInterrupted(ConsoleError):
    """A job's event stream could not be opened or broke off: worth opening again."""


class JobStatus(enum.StrEnum):
    """A job's status as the API reports it; the last three are final."""

    QUEUED = "queued"
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobError(TypedDict):
    code: str
    message: str | None


class Image(TypedDict):
    """An archived image of a job (app/archive/schemas.py's ImageRead)."""

    index: int
    url: str
    thumbnail_url: str
    content_type: str
    bytes: int
    width: int
    height: int
    sha256: str
    source_url: str


class Job(TypedDict):
    """A job as `GET /v1/jobs/{id}` returns it."""

    id: str
    status: str
    progress: int
    model: str
    prompt: str
    size: str | None
    n: int
    image_urls: list[str]
    mask_url: str | None
    metadata: dict[str, Any] | None
    evolink_task_id: str | None
    results: list[str]
    error: JobError | None
    usage: dict[str, Any] | None
    estimated_time: int | None
    created_at: str
    updated_at: str
    completed_at: str | None
    archive_status: NotRequired[str | None]
    images: NotRequired[list[Image]]


class JobPage(TypedDict):
    data: list[Job]
    next_cursor: str | None


class JobRequest(TypedDict):
    """The body of `POST /v1/jobs`; unset optional fields take the service's defaults."""

    prompt: str
    size: NotRequired[str]
    n: NotRequired[int]
    image_urls: NotRequired[list[str]]
    mask_url: NotRequired[str]
    metadata: NotRequired[dict[str, Any]]


def is_final(job: Job) -> bool:
    """Whether the job has stopped changing."""
    return job["status"] in FINAL_STATUSES


class JobsClient:
    """The jobs API at `base_url`, called as the owner of `api_key`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConsoleError(
                f"invalid service URL {base_url!r}: expected http(s)://host[:port]",
                exit_code=USAGE_EXIT_CODE,
            )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def create_job(self, request: JobRequest) -> Job:
        """Submit a job; the service answers at once with it (queued or pending)."""
        return cast(Job, self._call("POST", "/v1/jobs", json=request))

    def get_job(self, job_id: str) -> Job:
        """One job by id."""
        return cast(Job, self._call("GET", f"/v1/jobs/{job_id}"))

    @contextlib.contextmanager
    def job_stream(self, job_id: str, last_event_id: str | None) -> Iterator[httpx.Response]:
        """`GET /v1/jobs/{id}/stream` opened (status checked), its lines still to read."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(self.timeout, read=STREAM_READ_TIMEOUT_SECONDS)
        try:
            with self._http.stream(
                "GET", f"/v1/jobs/{job_id}/stream", headers=headers, timeout=timeout
            ) as response:
                if not response.is_success:
                    response.read()
                    raise self._failure(response)
                yield response
        except httpx.TimeoutException:
            raise StreamInterrupted(
                f"the service at {self.base_url} sent nothing for {STREAM_READ_TIMEOUT_SECONDS:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise StreamInterrupted(
                f"cannot reach the service at {self.base_url}: {_reason(exc)}"
            ) from None

    def list_jobs(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """One page of the caller's jobs, newest first."""
        params: dict[str, str | int] = {"limit": limit}
        if status is not None:
            params["status"] = status
        if cursor is not None:
            params["cursor"] = cursor
        return cast(JobPage, self._call("GET", "/v1/jobs", params=params))

    def get_usage(self, caller: str | None = None) -> dict[str, Any]:
        """`GET /v1/usage`: the caller's own usage, or (admins) another caller's."""
        params: dict[str, str | int] = {"caller": caller} if caller is not None else {}
        return self._call("GET", "/v1/usage", params=params)

    def download(self, url: str, into: Path) -> None:
        """Stream `url` (a path on the service, sent with our key, or any absolute URL, sent
        without it) into the file `into`."""
        own = not urlsplit(url).scheme
        try:
            if own:
                stream = self._http.stream("GET", url)
            else:
                stream = httpx.stream("GET", url, timeout=self.timeout, follow_redirects=True)
            with stream as response:
                if not response.is_success:
                    raise (
                        self._failure(response)
                        if own
                        else ConsoleError(f"cannot download {url}: HTTP {response.status_code}")
                    )
                with into.open("wb") as file:
                    for chunk in response.iter_bytes():
                        file.write(chunk)
        except httpx.TransportError as exc:
            raise ConsoleError(f"cannot download {url}: {_reason(exc)}") from None

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str | int] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TimeoutException:
            raise ConsoleError(
                f"the service at {self.base_url} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise ConsoleError(
                f"cannot reach the service at {self.base_url}: {_reason(exc)}"
            ) from None
        if response.is_success:
            body = _json(response)
            if not isinstance(body, dict):
                raise ConsoleError(
                    f"unexpected answer from {response.request.url}: not a JSON object"
                )
            return body
        raise self._failure(response)

    def _failure(self, response: httpx.Response) -> ConsoleError:
        problem = _json(response)
        if not isinstance(problem, dict):
            problem = {}
        status = response.status_code
        code = problem.get("code")
        detail = problem.get("detail")
        if status == 401:
            return ConsoleError(f"the service at {self.base_url} rejected the API key ({KEY_HINT})")
        if code is None:
            # Not our problem+json: a proxy, or something other than evolink-jobs at this URL.
            return ConsoleError(
                f"{self.base_url} answered {status} {response.reason_phrase} to "
                f"{response.request.method} {response.request.url.path}: "
                "is it the evolink-jobs API?"
            )
        if status == 404:
            return ConsoleError(f"not found: {detail or code}")
        if status == 422 and isinstance(problem.get("errors"), list):
            return ConsoleError(
                f"invalid input: {_field_errors(problem['errors'])}", exit_code=USAGE_EXIT_CODE
            )
        exit_code = USAGE_EXIT_CODE if status in (400, 422) else 1
        return ConsoleError(f"the service answered {status} {code}: {detail}", exit_code=exit_code)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _field_errors(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        if isinstance(error, dict):
            message = str(error.get("message", "invalid")).removeprefix("Value error, ")
            parts.append(f"{error.get('field', 'body')}: {message}")
    return "; ".join(parts) or "rejected by the service"


def _reason(exc: httpx.TransportError) -> str:
    # httpx passes on the OS's words, e.g. "[Errno 111] Connection refused".
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip()
    return text or type(exc).__name__
