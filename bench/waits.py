"""How soon a waiter on one replica answers after a change applied on another.

Run with `TEST_DATABASE_URL=postgresql+asyncpg://… .venv/bin/python bench/waits.py [ROUNDS]`: two
real `serve` processes share a fresh database (`<name>_bench_waits`) and the EvoLink simulator.
Each round holds `GET /v1/jobs/{id}` with `Prefer: wait=60` on replica A, delivers the job's
final callback to replica B, and measures from B's answer (the change is committed by then) to
A's answer: LISTEN/NOTIFY delivery, A's read of the job and its HTTP answer. The re-check is set to
a minute, so every answer came through a change signal. Goal: under 200 ms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import databases, processes

KEY = "e2e-alpha-key"
GOAL_MS = 200


async def one_round(a: str, b: str, simulator_url: str) -> float:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with (
        httpx.AsyncClient(base_url=a, headers=headers, timeout=90) as api,
        httpx.AsyncClient(timeout=30) as other,
    ):
        job = (
            await api.post("/v1/jobs", json={"prompt": "a bench [sim duration=600 callback=lost]"})
        ).json()
        record = (await other.get(f"{simulator_url}/_sim/tasks/{job['evolink_task_id']}")).json()
        path = httpx.URL(record["request"]["body"]["callback_url"]).path
        waited = asyncio.create_task(
            api.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"})
        )
        while True:
            if "evolink_jobs_waiters 1.0" in (await other.get(f"{a}/metrics")).text:
                break
            await asyncio.sleep(0.02)
        body = {"id": job["evolink_task_id"], "status": "completed", "results": ["https://x/1.png"]}
        answer = await other.post(b + path, json=body)
        applied = time.perf_counter()
        assert answer.json()["outcome"] == "applied", answer.text
        result = await waited
        woken = time.perf_counter()
        assert result.json()["status"] == "completed"
        return (woken - applied) * 1000


def main(rounds: int) -> None:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        sys.exit("set TEST_DATABASE_URL=postgresql+asyncpg://… (LISTEN/NOTIFY needs PostgreSQL)")
    url = make_url(base)
    database_url = url.set(database=f"{url.database}_bench_waits").render_as_string(
        hide_password=False
    )
    databases.reset_postgres(database_url)
    databases.migrate(database_url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-waits-"))
    sim_port = processes.free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    members = [processes.simulator(tmp, sim_port).start()]
    replicas = []
    try:
        for _ in range(2):
            port = processes.free_port()
            env = processes.service_env(
                database_url, simulator_url, port, LOG_LEVEL="WARNING", VERIFY_CALLBACKS="false",
                WAIT_RECHECK_SECONDS="60", ARCHIVE_URL="off",
            )  # fmt: skip
            members.append(processes.service(tmp, env, port).start())
            replicas.append(f"http://127.0.0.1:{port}")
        samples = asyncio.run(measure(rounds, replicas, simulator_url))
    finally:
        for member in reversed(members):
            member.terminate()
    samples.sort()
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    print(
        f"cross-replica wake, {rounds} rounds: p50 {statistics.median(samples):.1f} ms, "
        f"p95 {p95:.1f} ms, max {samples[-1]:.1f} ms (goal: under {GOAL_MS} ms)"
    )


async def measure(rounds: int, replicas: list[str], simulator_url: str) -> list[float]:
    return [await one_round(replicas[0], replicas[1], simulator_url) for _ in range(rounds)]


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
