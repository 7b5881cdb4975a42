"""What a stranger can make the service do over a real socket: bounded heads, bodies and ports."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support import processes

ALPHA = "e2e-alpha-key"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """A real `serve` (SQLite, no worker) with small bounds and a callbacks-only port."""
    tmp = tmp_path_factory.mktemp("exposure")
    port, callbacks_port = processes.free_port(), processes.free_port()
    env = processes.service_env(
        f"sqlite+aiosqlite:///{tmp / 'jobs.db'}",
        "http://127.0.0.1:9",  # EvoLink is never reached here
        port,
        MAX_REQUEST_BYTES=str(LIMIT),
        MAX_REQUEST_HEADER_BYTES="4096",
        REQUEST_HEADER_TIMEOUT_SECONDS="1",
        REQUEST_BODY_TIMEOUT_SECONDS="1",
        CALLBACKS_PORT=str(callbacks_port),
    )
    processes.migrate(env)
    serve = processes.service(tmp, env, port, "--no-worker").start()
    try:
        yield port, callbacks_port
    finally:
        serve.terminate()


def exchange(port: int, request: bytes, wait: float = 15) -> bytes:
    """Send raw bytes, then read until the server closes the connection (or `wait` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def problem_of(answer: bytes) -> dict[str, object]:
    body: dict[str, object] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return body


def test_an_oversized_body_is_refused_before_it_is_sent(server: tuple[int, int]) -> None:
    port, _ = server
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + ALPHA.encode() + b"\r\n"
        b"Content-Length: 200000000\r\n\r\n"
    )
    answer = exchange(port, head + b"{")  # the other 200 MB never come, and are not waited for
    assert status_of(answer) == 413
    assert problem_of(answer)["code"] == "request_too_large"


def test_a_chunked_body_over_the_limit_is_413(server: tuple[int, int]) -> None:
    port, _ = server

    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/jobs",
        content=chunks(),
        headers={"Authorization": f"Bearer {ALPHA}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_a_write_is_authenticated_before_its_body_is_parsed(server: tuple[int, int]) -> None:
    port, _ = server
    url = f"http://127.0.0.1:{port}/v1/jobs"
    for headers in ({}, {"Authorization": f"Bearer {ALPHA[:-1]}"}):
        response = httpx.post(url, content=b"{not json", headers=headers)
        assert response.status_code == 401, headers  # not 422: the body was never parsed
        assert response.json()["code"] == "unauthenticated"
    keyed = httpx.post(url, content=b"{not json", headers={"Authorization": f"Bearer {ALPHA}"})
    assert keyed.status_code == 422


def test_an_oversized_head_is_431(server: tuple[int, int]) -> None:
    port, _ = server
    answer = exchange(
        port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n"
    )
    assert status_of(answer) == 431
    fine = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status_of(fine) == 200


def test_a_half_sent_head_is_cut_off(server: tuple[int, int]) -> None:
    port, _ = server
    answer = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # and then nothing
    assert status_of(answer) == 408
    silent = exchange(port, b"")  # a connection that never says anything is closed too
    assert status_of(silent) == 408


def test_a_stalled_body_is_408(server: tuple[int, int]) -> None:
    port, _ = server
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + ALPHA.encode() + b"\r\nContent-Length: 100\r\n\r\n"
    )
    answer = exchange(port, head + b'{"prompt": ')
    assert status_of(answer) == 408
    assert problem_of(answer)["code"] == "request_timeout"


def test_the_callbacks_port_serves_callbacks_alone(server: tuple[int, int]) -> None:
    port, callbacks_port = server
    headers = {"Authorization": f"Bearer {ALPHA}"}
    base = f"http://127.0.0.1:{callbacks_port}"
    for path in ("/v1/jobs", "/metrics", "/docs", "/openapi.json"):
        refused = httpx.get(base + path, headers=headers)
        assert refused.status_code == 404, path
        assert "callbacks only" in refused.json()["detail"]
    job_id = "00000000-0000-0000-0000-000000000000"
    callback = httpx.post(f"{base}/callbacks/evolink/{job_id}/{'x' * 43}", json={})
    assert callback.status_code == 404  # the callback route itself answered: an unknown job
    assert "callbacks only" not in callback.json()["detail"]
    assert httpx.get(f"http://127.0.0.1:{port}/v1/jobs", headers=headers).status_code == 200
