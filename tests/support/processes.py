"""Real `evolink-jobs` processes (serve, worker, simulator) on ephemeral ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import CALLBACK_SECRET

BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "PYTHONPATH", "TMPDIR")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(database_url: str, simulator_url: str, port: int, **extra: str) -> dict[str, str]:
    """Environment for a service process against the simulator, tuned for quick tests."""
    env = {k: v for k, v in os.environ.items() if k in BASE_ENV_KEYS}
    env.update(
        DATABASE_URL=database_url,
        EVOLINK_API_KEY="sk-evo-e2e",
        EVOLINK_BASE_URL=simulator_url,
        EVOLINK_TIMEOUT_SECONDS="2",
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        ALLOW_INSECURE_CALLBACKS="true",
        CALLBACK_SECRET=CALLBACK_SECRET,
        API_KEYS="alpha:e2e-alpha-key,beta:e2e-beta-key",
        RECONCILE_GRACE_SECONDS="1",
        POLL_BACKOFF_INITIAL_SECONDS="0.3",
        POLL_BACKOFF_MAX_SECONDS="1",
        SUBMIT_BACKOFF_INITIAL_SECONDS="0.3",
        SUBMIT_BACKOFF_MAX_SECONDS="1",
        SUBMIT_UNKNOWN_DEADLINE_SECONDS="4",
        WORKER_INTERVAL_SECONDS="0.2",
        CLAIM_LEASE_SECONDS="5",
        ARCHIVE_DOWNLOAD_TIMEOUT_SECONDS="4",  # shorter than the lease, as settings require
        SHUTDOWN_TIMEOUT_SECONDS="5",
        LOG_LEVEL="DEBUG",  # the log tests check that no level leaks a secret
        # The simulator serves images from 127.0.0.1; never archive into the working directory.
        ARCHIVE_URL="file://" + tempfile.mkdtemp(prefix="evolink-archive-"),
        ARCHIVE_ALLOW_PRIVATE_NETWORKS="true",
        # A forced 402 must not refuse the next test's jobs (tests/spend covers the back-off).
        OUT_OF_CREDITS_BACKOFF_SECONDS="0.001",
    )
    env.update(extra)
    return env


@dataclass
class Process:
    """One child process running `python -m app.cli ARGS`, its output kept in a file."""

    args: Sequence[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 30) -> Process:
        """Start it and wait until `ready_url` answers 200."""
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        if self.ready_url:
            self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.popen is not None and self.ready_url is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited early:\n{self.output()}")
            try:
                if httpx.get(self.ready_url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.args[0]} not ready in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; its exit status."""
        return self.signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        self.signal_and_wait(signal.SIGKILL, 10)

    def signal_and_wait(self, signum: int, timeout: float) -> int:
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)
            raise


def simulator(
    tmp: Path, port: int, task_seconds: float = 0.6, extra: Sequence[str] = ()
) -> Process:
    """`evolink-jobs simulator` on `port`, accepting the service's http:// callbacks."""
    env = {k: v for k, v in os.environ.items() if k in BASE_ENV_KEYS}
    args = ["simulator", "--host", "127.0.0.1", "--port", str(port),
            "--task-seconds", str(task_seconds), "--allow-insecure-callbacks", *extra]  # fmt: skip
    return Process(args, env, tmp / f"simulator-{port}.log", f"http://127.0.0.1:{port}/_sim/health")


def service(tmp: Path, env: dict[str, str], port: int, *extra: str) -> Process:
    """`evolink-jobs serve` on `port`."""
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), *extra]
    return Process(args, env, tmp / f"serve-{port}.log", f"http://127.0.0.1:{port}/readyz")


def worker(tmp: Path, env: dict[str, str], name: str) -> Process:
    """`evolink-jobs worker`."""
    return Process(["worker"], env, tmp / f"worker-{name}.log")


def migrate(env: dict[str, str]) -> None:
    """`evolink-jobs migrate`."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
