"""The EvoLink client on its own: what each answer EvoLink can give becomes, at the HTTP boundary.

EvoLink is faked with an injected httpx transport that answers as EvoLink documents (both error
shapes) and as its gateways do (HTML pages, empty bodies, resets); what was sent is checked too.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.evolink import errors
from app.evolink.client import EvolinkClient, build_http_client
from app.evolink.schemas import CreateTaskRequest

API_KEY = "sk-evo-unit-secret"
TASK_ID = "task-unified-1757156493-imcg5zqt"
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Answers every request with `handler` and keeps the requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


async def get_task(handler: Handler) -> tuple[Any, Recorder]:
    """Call `get_task` against `handler`; returns what it returned or raised, and the requests."""
    recorder = Recorder(handler)
    http = build_http_client("https://evolink.test", 5.0, httpx.MockTransport(recorder))
    async with http:
        try:
            return await EvolinkClient(http, SecretStr(API_KEY)).get_task(TASK_ID), recorder
        except errors.EvolinkError as exc:
            return exc, recorder


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    def handler(_request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


def string_shape(code: str, kind: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": f"{code} (simulated)", "type": kind}}


def integer_shape(status: int, kind: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": f"HTTP {status}", "type": kind}}


async def test_a_task_is_read_with_the_key_and_the_documented_path() -> None:
    task, recorder = await get_task(answer(200, {"id": TASK_ID, "status": "processing"}))
    assert (task.id, task.status) == (TASK_ID, "processing")
    (sent,) = recorder.requests
    assert (sent.method, sent.url.path) == ("GET", f"/v1/tasks/{TASK_ID}")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


REJECTED, AUTH, CREDITS = (
    errors.EvolinkRequestRejected,
    errors.EvolinkAuthFailed,
    errors.EvolinkOutOfCredits,
)
NOT_FOUND, LIMITED, DOWN = (
    errors.EvolinkTaskNotFound,
    errors.EvolinkRateLimited,
    errors.EvolinkUnavailable,
)
UNKNOWN = errors.EvolinkOutcomeUnknown


@pytest.mark.parametrize(
    ("status", "code", "kind", "error_type"),
    [
        (400, "invalid_request", REJECTED, "invalid_request_error"),
        (400, "invalid_task_id", REJECTED, "invalid_request_error"),
        (401, "unauthorized", AUTH, "authentication_error"),
        (402, "insufficient_quota", CREDITS, "insufficient_quota"),
        (403, "model_access_denied", AUTH, "permission_error"),
        (404, "resource_not_found", NOT_FOUND, "invalid_request_error"),
        (413, "request_too_large", REJECTED, "invalid_request_error"),
        (429, "rate_limit_exceeded", LIMITED, "rate_limit_error"),
        (500, "internal_error", UNKNOWN, "api_error"),
        (502, "upstream_error", UNKNOWN, "upstream_error"),
        (503, "service_unavailable", DOWN, "service_unavailable_error"),
        (504, "gateway_timeout", UNKNOWN, "api_error"),
    ],
)
@pytest.mark.parametrize("shape", ["string", "integer"])
async def test_errors_are_classified_in_both_shapes(
    status: int, code: str, kind: type[errors.EvolinkError], error_type: str, shape: str
) -> None:
    body = (
        string_shape(code, error_type) if shape == "string" else integer_shape(status, error_type)
    )
    error, _ = await get_task(answer(status, body))
    assert type(error) is kind
    # The older shape's integer code repeats the status: its `type` is the useful code.
    assert (error.status, error.code) == (status, code if shape == "string" else error_type)
    assert body["error"]["message"] in error.message
    assert API_KEY not in error.message


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (502, HTML_502, errors.EvolinkOutcomeUnknown),
        (503, "<html><body>Service Unavailable</body></html>", errors.EvolinkUnavailable),
        (504, "<html><body>Gateway Time-out</body></html>", errors.EvolinkOutcomeUnknown),
        (500, "", errors.EvolinkOutcomeUnknown),
        (429, "", errors.EvolinkRateLimited),
        (404, "Not Found", errors.EvolinkTaskNotFound),
        (400, '{"error": "not an object"}', errors.EvolinkRequestRejected),
    ],
)
async def test_error_bodies_that_are_not_evolinks_json_keep_the_status(
    status: int, text: str, kind: type[errors.EvolinkError]
) -> None:
    error, _ = await get_task(answer(status, text, {"Content-Type": "text/html"}))
    assert type(error) is kind
    assert (error.status, error.code) == (status, None)
    assert f"EvoLink answered {status}" in error.message
    assert "<html>" not in error.message


@pytest.mark.parametrize(
    "text", ["<html>OK</html>", "", '{"status": "completed"}', "[]", '{"id": ""}']
)
async def test_a_success_that_is_not_a_task_is_an_unknown_outcome(text: str) -> None:
    error, _ = await get_task(answer(200, text))
    assert type(error) is errors.EvolinkOutcomeUnknown
    assert error.status == 200


def _http_date(offset: float) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


class HttpDateIn(float):
    """A Retry-After header that is an HTTP date this many seconds from when the test runs
    (not from collection, which may be many minutes earlier)."""


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("7", 7.0, 7.0),
        ("0", 0.0, 0.0),
        ("2.5", 2.5, 2.5),
        ("-3", 0.0, 0.0),  # a negative wait is no wait
        (HttpDateIn(3600), 3000.0, 3600.0),  # the date's own second is truncated
        (HttpDateIn(-3600), 0.0, 0.0),  # a date in the past: retry now
    ],
)
async def test_retry_after_is_read_as_seconds_or_http_date(
    header: str | HttpDateIn, low: float, high: float
) -> None:
    if isinstance(header, HttpDateIn):
        header = _http_date(header)
    body = integer_shape(429, "rate_limit_error")
    error, _ = await get_task(answer(429, body, {"Retry-After": header}))
    assert isinstance(error, errors.EvolinkRateLimited)
    assert error.retry_after is not None
    assert low <= error.retry_after <= high


@pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}, {"Retry-After": ""}])
async def test_retry_after_absent_or_garbage_is_none(headers: dict[str, str]) -> None:
    body = string_shape("rate_limit_exceeded", "rate_limit_error")
    error, _ = await get_task(answer(429, body, headers))
    assert isinstance(error, errors.EvolinkRateLimited)
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        (httpx.ConnectError("refused"), errors.EvolinkUnavailable),
        (httpx.ConnectTimeout("slow connect"), errors.EvolinkUnavailable),
        (httpx.ReadTimeout("no answer"), errors.EvolinkTimeout),
        (httpx.RemoteProtocolError("connection reset"), errors.EvolinkOutcomeUnknown),
        (httpx.ReadError("reset by peer"), errors.EvolinkOutcomeUnknown),
    ],
)
async def test_transport_failures_say_whether_the_request_may_have_arrived(
    exception: httpx.TransportError, kind: type[errors.EvolinkError]
) -> None:
    def fail(_request: httpx.Request) -> httpx.Response:
        raise exception

    error, _ = await get_task(fail)
    assert type(error) is kind
    assert error.status is None


async def test_create_sends_the_documented_body_and_parses_the_task() -> None:
    created = {"id": TASK_ID, "status": "pending", "task_info": {"estimated_time": 100}}
    recorder = Recorder(answer(200, created))
    http = build_http_client("https://evolink.test", 5.0, httpx.MockTransport(recorder))
    request = CreateTaskRequest(
        model="gpt-4o-image", prompt="a fox", n=2, callback_url="https://cb.test/x"
    )
    async with http:
        task = await EvolinkClient(http, SecretStr(API_KEY)).create_task(request)
    assert (task.id, task.estimated_time) == (TASK_ID, 100)
    (sent,) = recorder.requests
    assert (sent.method, sent.url.path) == ("POST", "/v1/images/generations")
    assert httpx.Response(200, content=sent.content).json() == {
        "model": "gpt-4o-image",
        "prompt": "a fox",
        "n": 2,
        "callback_url": "https://cb.test/x",
    }
