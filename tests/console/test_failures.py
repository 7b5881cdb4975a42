"""Every failure is one line on stderr and a non-zero exit: no tracebacks, no usage dumps."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

import httpx
import pytest
import typer

from app.console.client import ConsoleError, JobsClient
from tests.conftest import ALPHA_KEY
from tests.console.conftest import Service
from tests.console.support import Env, one_line_failure, run


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connecting is refused


@pytest.mark.parametrize(
    "args",
    [
        ("submit", "a fox"),
        ("submit", "a fox", "--wait"),
        ("jobs", "list"),
        ("jobs", "show", str(uuid.uuid4())),
    ],
)
def test_an_unreachable_service_is_one_line_naming_the_url(
    console: typer.Typer, env: Env, args: tuple[str, ...]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    line = one_line_failure(run(console, {**env, "EVOLINK_JOBS_URL": url}, *args), 1)
    assert line.startswith(f"cannot reach the service at {url}: ")


def test_an_unknown_host_is_one_line(console: typer.Typer, env: Env) -> None:
    result = run(console, env, "jobs", "list", "--url", "http://no-such-host.invalid")
    line = one_line_failure(result, 1)
    assert line.startswith("cannot reach the service at http://no-such-host.invalid: ")


def test_a_bad_key_is_one_line(console: typer.Typer, env: Env) -> None:
    for args in (("submit", "a fox"), ("jobs", "list"), ("jobs", "show", str(uuid.uuid4()))):
        result = run(console, env, *args, "--api-key", "not-a-key")
        line = one_line_failure(result, 1)
        assert "rejected the API key" in line and "EVOLINK_JOBS_API_KEY" in line


def test_a_missing_key_is_one_line(console: typer.Typer, env: Env) -> None:
    result = run(console, {**env, "EVOLINK_JOBS_API_KEY": None}, "jobs", "list")
    assert one_line_failure(result, 2) == "no API key: pass --api-key or set EVOLINK_JOBS_API_KEY"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--n", "3"), "invalid input: n: must be one of: 1, 2, 4"),
        (("--size", "2:1"), "invalid input: size: must be one of: "),
        (("--mask-url", "https://example.com/m.png"), "invalid input: mask_url: "),
        (("--image-url", "ftp://example.com/a.png"), "invalid input: image_urls.0: "),
    ],
)
def test_invalid_input_is_one_line_naming_the_field(
    console: typer.Typer, env: Env, args: tuple[str, ...], expected: str
) -> None:
    line = one_line_failure(run(console, env, "submit", "a fox", *args, "--wait"), 2)
    assert line.startswith(expected), line


def test_several_invalid_fields_are_all_named(console: typer.Typer, env: Env) -> None:
    line = one_line_failure(run(console, env, "submit", " ", "--n", "3"), 2)
    assert line.startswith("invalid input: ")
    assert "prompt: must not be empty" in line and "n: must be one of" in line


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ("{order: 1}", "invalid --metadata: not JSON ("),
        ('["a"]', "invalid --metadata: must be a JSON object"),
    ],
)
def test_bad_metadata_is_one_line_and_submits_nothing(
    console: typer.Typer, env: Env, service: Service, metadata: str, expected: str
) -> None:
    before = listed_ids(service)
    line = one_line_failure(run(console, env, "submit", "a fox", "--metadata", metadata), 2)
    assert line.startswith(expected), line
    assert listed_ids(service) == before


def test_an_unknown_job_is_one_line(console: typer.Typer, env: Env) -> None:
    job_id = str(uuid.uuid4())
    assert one_line_failure(run(console, env, "jobs", "show", job_id), 1) == (
        f"not found: no job {job_id}"
    )
    line = one_line_failure(run(console, env, "jobs", "show", "42", "--wait"), 2)
    assert line == "invalid job id '42': expected a UUID"


def test_a_url_that_is_not_a_url_is_one_line(console: typer.Typer, env: Env) -> None:
    line = one_line_failure(run(console, env, "jobs", "list", "--url", "localhost:8000"), 2)
    assert line == "invalid service URL 'localhost:8000': expected http(s)://host[:port]"


def test_a_service_that_is_not_evolink_jobs_is_one_line(
    console: typer.Typer, env: Env, service: Service
) -> None:
    # The simulator answers 404 without our problem+json: say so rather than "not found".
    line = one_line_failure(run(console, env, "jobs", "list", "--url", service.simulator_url), 1)
    assert line == (
        f"{service.simulator_url} answered 404 Not Found to GET /v1/jobs: "
        "is it the evolink-jobs API?"
    )


def listed_ids(service: Service) -> list[str]:
    response = httpx.get(
        f"{service.url}/v1/jobs",
        params={"limit": 200},
        headers={"Authorization": f"Bearer {ALPHA_KEY}"},
    )
    return [job["id"] for job in json.loads(response.text)["data"]]


def test_other_problems_are_one_line_with_status_code_and_detail(
    console: typer.Typer, env: Env
) -> None:
    # EvoLink refusing the service's own key is the service's problem: 502, not the caller's.
    line = one_line_failure(run(console, env, "submit", "a fox [sim create=401]"), 1)
    assert line.startswith("the service answered 502 gateway_misconfigured: "), line


def test_a_service_that_does_not_answer_times_out_in_one_line() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # connections queue up; nothing ever answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with (
            JobsClient(url, ALPHA_KEY, timeout=0.2) as client,
            pytest.raises(ConsoleError) as caught,
        ):
            client.list_jobs()
    assert caught.value.message == f"the service at {url} did not answer within 0.2 s"


def test_ctrl_c_while_following_says_the_job_keeps_running(
    console: typer.Typer, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = json.loads(run(console, env, "submit", "a fox [sim duration=1]", "--json").stdout)

    def interrupted_while_following(
        self: JobsClient, job_id: str, last_event_id: str | None
    ) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(JobsClient, "job_stream", interrupted_while_following)
    line = one_line_failure(
        run(console, env, "jobs", "show", job["id"], "--wait", "--poll-interval", "0.05"), 130
    )
    assert line == (
        f"stopped following job {job['id']}: it keeps running; "
        f"follow it again with: evolink-jobs jobs show {job['id']} --wait"
    )
