"""`submit`, with and without --wait, against a running service and simulated EvoLink."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import typer

from tests.conftest import ALPHA_KEY
from tests.console.conftest import Service
from tests.console.support import Env, one_line_failure, run

FAST = ("--poll-interval", "0.05")


def test_submit_wait_follows_the_job_and_prints_the_result_urls(
    console: typer.Typer, env: Env, service: Service
) -> None:
    result = run(console, env, "submit", "a lighthouse at dusk", "--size", "3:2", "--n", "2",
                 "--metadata", '{"order": "A-1"}', "--wait", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    urls = result.stdout.splitlines()
    assert len(urls) == 2
    submitted = result.stderr.splitlines()[0]
    assert submitted.startswith("job ") and submitted.endswith(" submitted")
    job_id = submitted.split()[1]
    with httpx.Client(headers={"Authorization": f"Bearer {ALPHA_KEY}"}) as http:
        job = http.get(f"{service.url}/v1/jobs/{job_id}").json()
        assert job["status"] == "completed"
        assert (job["size"], job["n"], job["metadata"]) == ("3:2", 2, {"order": "A-1"})
        assert job["results"] == urls
        # Real images from the simulator, not just strings.
        assert all(url.startswith(f"{service.simulator_url}/") for url in urls)
        assert http.get(urls[0]).headers["content-type"] == "image/png"


def test_a_failed_job_prints_its_error_and_exits_1(console: typer.Typer, env: Env) -> None:
    prompt = "a fox [sim outcome=failed code=content_policy_violation]"
    result = run(console, env, "submit", prompt, "--wait", *FAST)
    assert result.exit_code == 1
    assert result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last.startswith("evolink-jobs: job ") and " failed: content_policy_violation: " in last


def test_submit_wait_json_is_the_final_job_and_nothing_else(console: typer.Typer, env: Env) -> None:
    result = run(console, env, "submit", "a fox", "--wait", "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    job = json.loads(result.stdout)
    assert job["status"] == "completed" and len(job["results"]) == 1

    failed = run(console, env, "submit", "a fox [sim code=generation_timeout]", "--wait",
                 "--json", *FAST)  # fmt: skip
    assert failed.exit_code == 1
    assert failed.stderr == ""
    assert json.loads(failed.stdout)["error"]["code"] == "generation_timeout"


def test_submit_without_wait_answers_at_once(console: typer.Typer, env: Env) -> None:
    result = run(console, env, "submit", "a fox", "--json")
    assert result.exit_code == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] in ("queued", "pending")

    human = run(console, env, "submit", "a fox")
    assert human.exit_code == 0, human.stderr
    assert human.stdout.startswith("job ") and human.stdout.split()[2] in ("queued", "pending")
    assert "jobs show" in human.stderr


def test_wait_shows_a_progress_bar_on_a_terminal(console: typer.Typer, env: Env) -> None:
    terminal = {**env, "TTY_COMPATIBLE": "1", "COLUMNS": "100"}
    result = run(console, terminal, "submit", "a fox [sim duration=0.5]", "--wait", *FAST)
    assert result.exit_code == 0, result.stderr
    assert "━" in result.stderr  # the bar
    assert "pending" in result.stderr and "completed" in result.stderr
    assert "100%" in result.stderr
    # The URLs stay plain on stdout.
    assert result.stdout.startswith("http")


def test_submit_wait_download_saves_the_archived_images(
    console: typer.Typer, env: Env, service: Service, tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    result = run(console, env, "submit", "a harbour", "--n", "2", "--wait",
                 "--download", str(folder), *FAST)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    job_id = result.stderr.splitlines()[0].split()[1]
    saved = sorted(folder.iterdir())
    assert [p.name for p in saved] == [f"{job_id}-0.png", f"{job_id}-1.png"]
    with httpx.Client(headers={"Authorization": f"Bearer {ALPHA_KEY}"}) as http:
        job = http.get(f"{service.url}/v1/jobs/{job_id}").json()
    assert job["archive_status"] == "archived"
    for path, image in zip(saved, job["images"], strict=True):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == image["sha256"]

    shown = run(console, {**env, "COLUMNS": "300"}, "jobs", "show", job_id)  # URLs unfolded
    assert f"{service.url}/v1/jobs/{job_id}/images/0" in shown.stdout
    assert f"{service.url}/v1/jobs/{job_id}/images/1" in shown.stdout
    assert "archived" in shown.stdout


def test_download_needs_wait(console: typer.Typer, env: Env, tmp_path: Path) -> None:
    result = run(console, env, "submit", "a fox", "--download", str(tmp_path))
    assert one_line_failure(result, 2) == "--download needs --wait"
