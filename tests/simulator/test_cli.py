"""`evolink-jobs simulator` on the command line: EvoLink's rules by default, relaxed on request."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app import cli
from app.simulator import SimulatorConfig
from tests.simulator.conftest import body
from tests.support import processes


def test_the_command_is_strict_unless_told_and_exposes_the_ttls(tmp_path: Path) -> None:
    port = processes.free_port()
    args = ["simulator", "--host", "127.0.0.1", "--port", str(port), "--task-seconds", "0",
            "--task-ttl-seconds", "0", "--result-ttl-seconds", "0"]  # fmt: skip
    ready = f"http://127.0.0.1:{port}/_sim/health"
    env = {k: v for k, v in os.environ.items() if k in processes.BASE_ENV_KEYS}
    sim = processes.Process(args, env, tmp_path / "sim.log", ready)
    sim.start()
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer k"}
        ) as client:
            for refused in ("http://127.0.0.1:8000/cb", "https://10.0.0.7/cb", "http://x.test/cb"):
                answer = client.post("/v1/images/generations", json=body(callback_url=refused))
                assert answer.status_code == 400, refused
                assert answer.json()["error"]["param"] == "callback_url"
            created = client.post(
                "/v1/images/generations", json=body(callback_url="https://jobs.example.com/cb")
            )
            assert created.status_code == 200
            # Zero TTLs: the task and its file are gone as soon as the (instant) task has ended.
            task_id = created.json()["id"]
            assert client.get(f"/v1/tasks/{task_id}").status_code == 404
            assert client.get(f"/files/{task_id}/0.png").status_code == 404
    finally:
        sim.terminate()
    assert "callback URLs: HTTPS public" in sim.output()


@pytest.mark.parametrize(
    ("flags", "strict", "task_ttl"),
    [
        ([], True, None),
        (["--allow-insecure-callbacks"], False, None),
        (["--task-ttl-seconds", "30"], True, 30.0),
    ],
)
def test_flags_reach_the_config(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], strict: bool, task_ttl: float | None
) -> None:
    seen: list[SimulatorConfig] = []
    monkeypatch.setattr(cli, "run_simulator", lambda config, _host, _port: seen.append(config))
    result = CliRunner().invoke(cli.cli, ["simulator", *flags])
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert (config.strict_callbacks, config.task_ttl_seconds) == (strict, task_ttl)


def test_a_negative_ttl_is_one_readable_line() -> None:
    result = CliRunner().invoke(cli.cli, ["simulator", "--task-ttl-seconds", "-1"])
    assert result.exit_code == 2
    assert "task_ttl_seconds must not be negative" in result.output
