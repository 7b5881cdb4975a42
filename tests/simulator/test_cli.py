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
    ("flags", "expected"),
    [
        ([], (True, None, "alternate", None)),
        (["--allow-insecure-callbacks"], (False, None, "alternate", None)),
        (["--task-ttl-seconds", "30"], (True, 30.0, "alternate", None)),
        (["--error-shape", "random", "--error-seed", "7"], (True, None, "random", 7)),
    ],
)
def test_flags_reach_the_config(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], expected: tuple[object, ...]
) -> None:
    seen: list[SimulatorConfig] = []
    monkeypatch.setattr(cli, "run_simulator", lambda config, _host, _port: seen.append(config))
    result = CliRunner().invoke(cli.cli, ["simulator", *flags])
    assert result.exit_code == 0, result.output
    (c,) = seen
    assert (c.strict_callbacks, c.task_ttl_seconds, c.error_shape, c.error_seed) == expected


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task-ttl-seconds", "-1"], "task_ttl_seconds must not be negative"),
        (["--error-shape", "xml"], "error shape must be alternate, random, string or integer"),
    ],
)
def test_bad_values_are_one_readable_line(flags: list[str], message: str) -> None:
    result = CliRunner().invoke(cli.cli, ["simulator", *flags])
    assert result.exit_code == 2
    assert message in result.output
