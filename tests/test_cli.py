"""The console script: migrate, and serve's refusals, as a user runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ALPHA_KEY, CALLBACK_SECRET


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        EVOLINK_API_KEY="sk-evo-cli-test",
        PUBLIC_BASE_URL="https://jobs.example.test",
        CALLBACK_SECRET=CALLBACK_SECRET,
        API_KEYS=f"alpha:{ALPHA_KEY}",
        ARCHIVE_URL=f"file://{tmp_path / 'archive'}",
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = run_cli("serve", env=base_env(tmp_path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "not migrated" in lines[0] and "evolink-jobs migrate" in lines[0]


def test_missing_and_invalid_settings_are_one_line(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    del env["EVOLINK_API_KEY"], env["API_KEYS"]
    result = run_cli("serve", env=env)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "evolink-jobs: missing settings: EVOLINK_API_KEY, API_KEYS or CALLERS_FILE "
        "(see .env.example)"
    )
    result = run_cli("migrate", env=base_env(tmp_path, CALLBACK_SECRET="short"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "evolink-jobs: invalid settings: CALLBACK_SECRET: Value error, must be at least 32 bytes"
    ]


def test_migrate_then_serve(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert ready.json() == {"status": "ok"}
        listed = httpx.get(
            f"http://127.0.0.1:{port}/v1/jobs", headers={"Authorization": f"Bearer {ALPHA_KEY}"}
        )
        assert listed.json() == {"data": [], "next_cursor": None}
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert server.returncode in (0, -15)
    assert '"event": "stopped"' in output, output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["submit", "a fox", "--n", "abc", "--api-key", "k"], "--n"),
        (["submit", "--api-key", "k"], "prompt"),
        (["frobnicate"], "frobnicate"),
        (["serve", "--port", "eighty"], "--port"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], named: str, tmp_path: Path) -> None:
    result = run_cli(*args, env=base_env(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evolink-jobs: "), result.stderr
    assert named in lines[0]
