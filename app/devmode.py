"""`evolink-jobs dev`: the whole system on one machine, the simulator standing in for EvoLink."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.auth.callers import WEBHOOK_SECRET_PREFIX
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


def persistent_secret(path: Path, prefix: str = "", new: Callable[[], str] | None = None) -> str:
    """A random secret kept in `path`, so restarts keep the same key."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = prefix + (new() if new is not None else secrets.token_urlsafe(24))
    _write_private(path, value + "\n")
    return value


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def _new_webhook_secret() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def dev_callers_file(plan: DevPlan) -> Path:
    """The dev caller, with its API key and a webhook secret (so that `notify_url` works), as a
    CALLERS_FILE in the data dir; the keys persist across restarts."""
    api_key = persistent_secret(plan.data_dir / "api_key", prefix="dev-")
    webhook_secret = persistent_secret(
        plan.data_dir / "webhook_secret", prefix=WEBHOOK_SECRET_PREFIX, new=_new_webhook_secret
    )
    path = plan.data_dir / "callers.toml"
    _write_private(
        path,
        f"# Written by `evolink-jobs dev` at each start, from api_key and webhook_secret.\n"
        f"[callers.{DEV_CALLER}]\n"
        f"api_key = {json.dumps(api_key)}\n"
        f"webhook_secrets = [{json.dumps(webhook_secret)}]\n",
    )
    return path


def dev_settings(plan: DevPlan) -> Settings:
    """Settings for dev mode: SQLite in the data dir, the simulator as EvoLink, one caller."""
    return Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{plan.data_dir / 'evolink_jobs.db'}",
        evolink_api_key=SIMULATOR_KEY,
        evolink_base_url=plan.simulator_url,
        public_base_url=plan.api_url,
        allow_insecure_callbacks=True,
        callback_secret=persistent_secret(plan.data_dir / "callback_secret"),
        callers_file=dev_callers_file(plan),
        # Webhooks may go to a receiver on this machine (loopback is refused by default).
        notify_allowed_hosts=("0.0.0.0/0", "::/0"),
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
    caller = settings.callers.get(DEV_CALLER)
    assert caller is not None and caller.webhook_secrets
    key = (plan.data_dir / "api_key").read_text().strip()
    webhook_secret = caller.webhook_secrets[0]
    body = '{"prompt": "a lighthouse at dusk, watercolour", "size": "3:2", "n": 2}'
    cli = own_command()
    env = f"EVOLINK_JOBS_URL={plan.api_url} EVOLINK_JOBS_API_KEY={key}"
    return f"""
evolink-jobs dev mode: SQLite + the EvoLink simulator (not EvoLink; images are made locally)

  API          {plan.api_url}        (docs: {plan.api_url}/docs)
  simulator    {plan.simulator_url}  (tasks take {plan.task_seconds:g} s)
  database     {settings.database_url}
  API key      {key}   (caller "{DEV_CALLER}"; kept in {plan.data_dir / "api_key"})
  webhooks     signed with {webhook_secret}
               (kept in {plan.data_dir / "webhook_secret"}; add "notify_url" to a job)
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
