"""The container's and compose's commands, run exactly as they are written (no Docker engine here).

The Dockerfile's entrypoint and each compose service's command run as real processes, and the
image's HEALTHCHECK command probes the running API. Only the ports and the database differ.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import processes

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DEV_ENV = dict(
    line.split("=", 1)
    for line in (ROOT / "dev.env").read_text().splitlines()
    if line and not line.startswith("#")
)


def dockerfile_json(instruction: str) -> list[str]:
    """The exec-form argument list of the runtime stage's last `instruction`."""
    runtime = DOCKERFILE.split(" AS runtime", 1)[1].replace("\\\n", " ")
    pattern = rf"^{instruction}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$"
    matches = re.findall(pattern, runtime, re.MULTILINE)
    assert matches, f"no exec-form {instruction} in the runtime stage"
    value: list[str] = json.loads(matches[-1])
    return value


def entrypoint() -> list[str]:
    [program] = dockerfile_json("ENTRYPOINT")
    script = Path(sys.executable).parent / program
    assert script.exists(), f"{program} is not installed by the project"
    return [str(script)]


def with_port(args: list[str], old: int, new: int) -> list[str]:
    return [str(new) if arg == str(old) else arg.replace(f":{old}/", f":{new}/") for arg in args]


def test_the_image_is_built_the_way_we_expect() -> None:
    assert DOCKERFILE.count("\nFROM ") + DOCKERFILE.startswith("FROM") >= 2, "two stages"
    runtime = DOCKERFILE.split(" AS runtime", 1)[1]
    assert re.search(r"^USER \d+:\d+$", runtime, re.MULTILINE), "runs as a non-root user"
    assert "uv sync --locked" in DOCKERFILE, "dependencies come from the lock file"
    assert "gcc" not in runtime and "build-essential" not in runtime
    assert dockerfile_json("ENTRYPOINT") == ["evolink-jobs"]
    assert dockerfile_json("CMD")[0] == "serve"


def test_compose_wires_db_migrate_api_worker_and_the_dev_simulator() -> None:
    services = COMPOSE["services"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert services["simulator"]["profiles"] == ["dev"]
    assert "healthcheck" in services["db"]
    secrets = ("POSTGRES_PASSWORD", "CALLBACK_SECRET", "API_KEYS", "PUBLIC_BASE_URL")
    text = (ROOT / "docker-compose.yml").read_text()
    for name in secrets:
        assert re.search(rf"\$\{{{name}:\?[^}}]+\}}", text), f"{name} must fail fast"


def test_compose_exposes_only_the_callbacks_port() -> None:
    services = COMPOSE["services"]
    assert "ports" not in services["simulator"], "the simulator stays on the internal network"
    api_ports = services["api"]["ports"]
    whole_api = [p for p in api_ports if p.endswith(":8000")]
    assert whole_api == ["${API_BIND:-127.0.0.1}:${API_PORT:-8000}:8000"], "API on loopback"
    assert "--callbacks-port" in services["api"]["command"]
    callbacks_port = services["api"]["command"][
        services["api"]["command"].index("--callbacks-port") + 1
    ]
    assert any(p.endswith(f":{callbacks_port}") for p in api_ports)
    assert DEV_ENV["PUBLIC_BASE_URL"].endswith(f":{callbacks_port}"), (
        "EvoLink calls the callbacks port"
    )


@pytest.fixture
def container_env(tmp_path: Path) -> dict[str, str]:
    """What compose gives the app containers with dev.env, on a database reachable from here."""
    env = {k: v for k, v in os.environ.items() if k in processes.BASE_ENV_KEYS}
    env.update(DEV_ENV)
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'container.db'}"
    env["ARCHIVE_URL"] = f"file://{tmp_path / 'archive'}"  # the volume api and worker share
    return env


def test_compose_commands_and_the_healthcheck_work(
    container_env: dict[str, str], tmp_path: Path
) -> None:
    services = COMPOSE["services"]
    api_port, sim_port = processes.free_port(), processes.free_port()
    callbacks_port = processes.free_port()
    env = {
        **container_env,
        "EVOLINK_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{callbacks_port}",
    }

    migrate = subprocess.run(
        [*entrypoint(), *services["migrate"]["command"]],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr

    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, old_port, new_port in (("simulator", 8090, sim_port), ("api", 8000, api_port)):
            args = with_port(services[name]["command"], old_port, new_port)
            args = with_port(args, 8080, callbacks_port)
            log = (tmp_path / f"{name}.log").open("wb")
            started.append(
                subprocess.Popen([*entrypoint(), *args], env=env, stdout=log, stderr=log)
            )
        worker_log = (tmp_path / "worker.log").open("wb")
        started.append(
            subprocess.Popen(
                [*entrypoint(), *services["worker"]["command"]],
                env=env,
                stdout=worker_log,
                stderr=worker_log,
            )
        )
        healthcheck = with_port(dockerfile_json("HEALTHCHECK"), 8000, api_port)
        assert healthcheck[0] == "python"
        probe = [sys.executable, *healthcheck[1:]]
        wait_for(lambda: subprocess.run(probe, capture_output=True, check=False).returncode == 0)

        key = DEV_ENV["API_KEYS"].split(":", 1)[1]
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {key}"}
        )
        job = api.post("/v1/jobs", json={"prompt": "a container test"}).json()
        wait_for(lambda: api.get(f"/v1/jobs/{job['id']}").json()["status"] == "completed")
        # The worker archives (api runs --no-worker); the api serves from the shared folder.
        wait_for(lambda: api.get(f"/v1/jobs/{job['id']}").json()["archive_status"] == "archived")
        assert api.get(f"/v1/jobs/{job['id']}/images/0").headers["content-type"] == "image/png"
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)
    logs = (tmp_path / "worker.log").read_text()
    assert '"event": "worker_started"' in logs and '"event": "worker_stopped"' in logs


def wait_for(condition: Any, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
