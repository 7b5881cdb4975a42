"""`evolink-jobs dev`: the whole system on one machine, the simulator standing in for EvoLink."""

from __future__ import annotations

import contextlib
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.web import devlogin

DEV_CALLER = "dev"
SIMULATOR_KEY = "sk-evo-dev-simulator"


@dataclass(frozen=True)
class DevPlan:
    """Where everything runs in dev mode."""

    data_dir: Path
    host: str
    port: int
    simulator_port: int
    task_seconds: float

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def simulator_url(self) -> str:
        return f"http://{self.host}:{self.simulator_port}"


def persistent_secret(path: Path, prefix: str = "") -> str:
    """A random secret kept in `path`, so restarts keep the same key."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = prefix + secrets.token_urlsafe(24)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def dev_settings(plan: DevPlan) -> Settings:
    """Settings for dev mode: SQLite in the data dir, the simulator as EvoLink, one caller."""
    api_key = persistent_secret(plan.data_dir / "api_key", prefix="dev-")
    return Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{plan.data_dir / 'evolink_jobs.db'}",
        evolink_api_key=SIMULATOR_KEY,
        evolink_base_url=plan.simulator_url,
        public_base_url=plan.api_url,
        allow_insecure_callbacks=True,
        callback_secret=persistent_secret(plan.data_dir / "callback_secret"),
        api_keys=f"{DEV_CALLER}:{api_key}",
        reconcile_grace_seconds=5,
        archive_url=f"file://{plan.data_dir / 'archive'}",
        archive_allow_private_networks=True,  # the simulator serves images from 127.0.0.1
    )


@contextlib.contextmanager
def running_simulator(plan: DevPlan) -> Iterator[subprocess.Popen[bytes]]:
    """The simulator in a child process, ready to answer; stopped on exit."""
    command = [
        sys.executable, "-m", "app.cli", "simulator",
        "--host", plan.host, "--port", str(plan.simulator_port),
        "--task-seconds", str(plan.task_seconds),
        # The service calls back on plain http://127.0.0.1, which EvoLink itself would refuse.
        "--allow-insecure-callbacks",
    ]  # fmt: skip
    process = subprocess.Popen(command)  # noqa: S603 - our own interpreter and module
    try:
        _wait_until_up(f"{plan.simulator_url}/_sim/health", process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the simulator exited with status {process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the simulator did not answer at {url} within {timeout:g} s")


def enable_console_link(app: FastAPI, plan: DevPlan) -> str:
    """Turn on the web console's one-time sign-in link (dev mode only); the URL to print."""
    return devlogin.enable(app, DEV_CALLER, plan.api_url)


def own_command() -> str:
    """How a person in this directory runs `evolink-jobs` (it may not be on their PATH)."""
    script = Path(sys.executable).parent / "evolink-jobs"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m app.cli"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return shlex.quote(str(script))


def banner(plan: DevPlan, settings: Settings, console_link: str | None = None) -> str:
    """What a new user needs: where things run, the key, and commands to paste."""
    console = (
        f"\n  console      {plan.api_url}/console\n"
        f"               one-time sign-in link: {console_link}\n"
        if console_link
        else ""
    )
    key = settings.api_keys[0].key.get_secret_value()
    body = '{"prompt": "a lighthouse at dusk, watercolour", "size": "3:2", "n": 2}'
    cli = own_command()
    env = f"EVOLINK_JOBS_URL={plan.api_url} EVOLINK_JOBS_API_KEY={key}"
    return f"""
evolink-jobs dev mode: SQLite + the EvoLink simulator (not EvoLink; images are made locally)

  API          {plan.api_url}        (docs: {plan.api_url}/docs)
  simulator    {plan.simulator_url}  (tasks take {plan.task_seconds:g} s)
  database     {settings.database_url}
  API key      {key}   (caller "{DEV_CALLER}"; kept in {plan.data_dir / "api_key"})
{console}
Submit a job:

  curl -s -X POST {plan.api_url}/v1/jobs \\
    -H "Authorization: Bearer {key}" \\
    -H "Content-Type: application/json" \\
    -d '{body}'

Follow it to completion (paste the "id" from the answer):

  {env} {cli} jobs show JOB_ID --wait

Or submit and follow in one go:

  {env} {cli} submit "a lighthouse at dusk, watercolour" --size 3:2 --n 2 --wait

Stop with Ctrl-C.
"""
