"""`jobs list` and `jobs show`: tables for people, JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

import typer

from app.console.client import JobStatus
from app.jobs.models import JobStatus as ServiceJobStatus
from tests.conftest import BETA_KEY
from tests.console.support import Env, run

FAST = ("--poll-interval", "0.05")


def submitted(console: typer.Typer, env: Env, prompt: str, *args: str) -> dict[str, Any]:
    result = run(console, env, "submit", prompt, "--json", *args)
    assert result.exit_code in (0, 1), result.stderr
    job: dict[str, Any] = json.loads(result.stdout)
    return job


def test_show_prints_a_table_of_the_job(console: typer.Typer, env: Env) -> None:
    job = submitted(console, env, "a heron in the reeds", "--wait", *FAST)
    result = run(console, env, "jobs", "show", job["id"])
    assert result.exit_code == 0, result.stderr
    table = result.stdout
    assert job["id"] in table and "completed" in table and "a heron in the reeds" in table
    assert job["evolink_task_id"] in table
    assert result.stderr == ""


def test_show_json_is_the_job(console: typer.Typer, env: Env) -> None:
    job = submitted(console, env, "a fox", "--wait", *FAST)
    result = run(console, env, "jobs", "show", job["id"], "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == job


def test_show_wait_follows_a_running_job_to_its_end(console: typer.Typer, env: Env) -> None:
    job = submitted(console, env, "a fox [sim duration=0.3]")
    assert job["status"] in ("queued", "pending")
    result = run(console, env, "jobs", "show", job["id"], "--wait", *FAST)
    assert result.exit_code == 0, result.stderr
    assert job["id"] in result.stdout and "completed" in result.stdout

    failed = submitted(console, env, "a fox [sim outcome=cancelled duration=0.3]")
    result = run(console, env, "jobs", "show", failed["id"], "--wait", "--json", *FAST)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "cancelled"


def test_list_prints_a_table_of_recent_jobs(console: typer.Typer, env: Env) -> None:
    job = submitted(console, env, "a list entry", "--wait", *FAST)
    result = run(console, env, "jobs", "list", "--limit", "5")
    assert result.exit_code == 0, result.stderr
    assert job["id"] in result.stdout and "completed" in result.stdout


def test_list_filters_by_status(console: typer.Typer, env: Env) -> None:
    failed = submitted(console, env, "a fox [sim code=content_policy_violation]", "--wait", *FAST)
    completed = submitted(console, env, "a fox", "--wait", *FAST)

    def listed(status: str) -> list[str]:
        result = run(console, env, "jobs", "list", "--status", status, "--all", "--json")
        assert result.exit_code == 0, result.stderr
        jobs = json.loads(result.stdout)["data"]
        assert {job["status"] for job in jobs} == {status}
        return [job["id"] for job in jobs]

    assert failed["id"] in listed("failed") and failed["id"] not in listed("completed")
    assert completed["id"] in listed("completed")


def test_list_pages_through_every_job(console: typer.Typer, env: Env) -> None:
    # Caller beta is this test's alone, so its list is exactly what it made.
    beta = {**env, "EVOLINK_JOBS_API_KEY": BETA_KEY}
    made = [submitted(console, beta, f"job {i}")["id"] for i in range(3)]

    first = run(console, beta, "jobs", "list", "--limit", "2", "--json")
    assert first.exit_code == 0, first.stderr
    page = json.loads(first.stdout)
    assert [job["id"] for job in page["data"]] == made[:0:-1]  # newest first
    assert page["next_cursor"] is not None

    table = run(console, beta, "jobs", "list", "--limit", "2")
    assert "more jobs exist" in table.stderr

    everything = run(console, beta, "jobs", "list", "--all", "--json")
    assert [job["id"] for job in json.loads(everything.stdout)["data"]] == made[::-1]
    assert json.loads(everything.stdout)["next_cursor"] is None


def test_statuses_match_the_service() -> None:
    assert {s.value for s in JobStatus} == {s.value for s in ServiceJobStatus}


def test_caller_text_cannot_drive_the_operators_terminal(console: typer.Typer, env: Env) -> None:
    clear_screen, c1_csi = "\x1b[2J\x1b[H", "\x9b31m"
    job = submitted(console, env, f"a fox{clear_screen}owned{c1_csi}", "--wait", *FAST)
    for args in (("jobs", "show", job["id"]), ("jobs", "list")):
        result = run(console, env, *args)
        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x9b" not in result.stdout, args
        assert "\\x1b[2J" in result.stdout, args  # shown, inert, so the operator sees it
    for json_args in (("jobs", "show", job["id"], "--json"), ("jobs", "list", "--json")):
        result = run(console, env, *json_args)
        assert "\x1b" not in result.stdout and "\x9b" not in result.stdout, json_args
        assert "owned" in result.stdout and "\\u009b31m" in result.stdout, json_args
