"""On SIGTERM, held waits answer at once and streams end, so `serve` exits promptly."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from tests.events.sse import Stream, read
from tests.support import processes

ALPHA = "e2e-alpha-key"
BEFORE_DEADLINE = 30


async def waiters(api: httpx.AsyncClient, count: int) -> None:
    while True:
        if f"evolink_jobs_waiters {count:.1f}" in (await api.get("/metrics")).text:
            return
        await asyncio.sleep(0.1)


async def test_sigterm_answers_held_waits_and_ends_streams(tmp_path: Path) -> None:
    sim_port, api_port = processes.free_port(), processes.free_port()
    env = processes.service_env(
        f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", f"http://127.0.0.1:{sim_port}", api_port,
        SHUTDOWN_TIMEOUT_SECONDS="60",  # longer than the waits: only their release ends them
    )  # fmt: skip
    processes.migrate(env)
    sim = processes.simulator(tmp_path, sim_port).start()
    service = processes.service(tmp_path, env, api_port).start()
    headers = {"Authorization": f"Bearer {ALPHA}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=90
        ) as api:
            job = (await api.post("/v1/jobs", json={"prompt": "an owl [sim duration=120]"})).json()
            waited = asyncio.create_task(
                api.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"})
            )
            stream = Stream()
            async with api.stream("GET", f"/v1/jobs/{job['id']}/stream") as response:
                events = read(response, stream)
                await anext(events)
                await asyncio.wait_for(waiters(api, 2), BEFORE_DEADLINE)

                exited = asyncio.get_running_loop().run_in_executor(
                    None, service.terminate, BEFORE_DEADLINE
                )

                async def rest() -> None:
                    async for _ in events:
                        pass

                await asyncio.wait_for(rest(), BEFORE_DEADLINE)
            answer = await asyncio.wait_for(waited, BEFORE_DEADLINE)
            # uvicorn re-raises SIGTERM once it has shut down cleanly.
            assert await asyncio.wait_for(exited, BEFORE_DEADLINE) in (0, -signal.SIGTERM)
    finally:
        service.terminate()
        sim.terminate()
    assert stream.ended and stream.statuses == ["pending"]
    assert answer.status_code == 200
    assert answer.headers["Preference-Applied"] == "wait=60"
    assert answer.json()["status"] == "pending"  # as it stood: the job goes on after a restart
