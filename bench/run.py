"""Benchmarks: how fast the hot paths answer, as ratios to a trivial route measured in the same run.

Run with `make bench` (SQLite; set TEST_DATABASE_URL to add PostgreSQL). EvoLink is an in-process
fake that answers at once, so the figures are this service's own cost. These machines are shared
and noisy: compare the ratios, not the absolute milliseconds.

Goal: the callback route (EvoLink's only path, which must answer in milliseconds) costs less
than 8 one-query requests (/readyz: one SELECT 1 round trip) at p50, and stays under 20 ms at p95.
Logging is at INFO as in production, to a discarded stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings
from app.logs import configure_logging
from app.main import create_app
from app.migrations import upgrade

KEY = "bench-key-0123456789"
ROUNDS = 300
GOAL_RATIO = 8
GOAL_P95_MS = 20


def fake_evolink() -> httpx.MockTransport:
    counter = iter(range(10**9))

    def answer(request: httpx.Request) -> httpx.Response:
        task_id = f"task-unified-bench-{next(counter)}"
        return httpx.Response(
            200,
            json={"id": task_id, "status": "pending", "progress": 0,
                  "task_info": {"estimated_time": 100}},
        )  # fmt: skip

    return httpx.MockTransport(answer)


async def timed(call: Callable[[], Awaitable[httpx.Response]], rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = await call()
        seconds.append(time.perf_counter() - started)
        assert response.status_code < 300, response.text
    return seconds


def summary(name: str, seconds: list[float], baseline: float) -> str:
    p50 = statistics.median(seconds) * 1000
    p95 = statistics.quantiles(seconds, n=20)[-1] * 1000
    return f"{name:<34} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   x{p50 / baseline:5.1f} readyz"


async def bench(database_url: str) -> list[str]:
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        evolink_api_key="sk-evo-bench",
        evolink_base_url="https://evolink.bench",
        public_base_url="https://jobs.bench",
        callback_secret="bench-callback-secret-0123456789abcdef",
        api_keys=f"bench:{KEY}",
    )
    configure_logging("INFO", stream=open(os.devnull, "w"))  # noqa: SIM115 - for the whole run
    app = create_app(settings, run_worker=False, evolink_transport=fake_evolink())
    lines = []
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as client:
            health = await timed(lambda: client.get("/healthz"), ROUNDS)
            ready = await timed(lambda: client.get("/readyz"), ROUNDS)
            baseline = statistics.median(ready) * 1000
            lines.append(summary("GET /healthz (no database)", health, baseline))
            lines.append(summary("GET /readyz (baseline: SELECT 1)", ready, baseline))

            jobs: list[dict[str, str]] = []

            async def create() -> httpx.Response:
                response = await client.post("/v1/jobs", json={"prompt": "a benchmark fox"})
                jobs.append(response.json())
                return response

            started = time.perf_counter()
            creates = await timed(create, ROUNDS)
            rate = ROUNDS / (time.perf_counter() - started)
            lines.append(summary("POST /v1/jobs (submit to EvoLink)", creates, baseline))

            signer = app.state.signer
            paths = iter(httpx.URL(signer.url_for(uuid.UUID(j["id"]))).path for j in jobs)
            bodies = iter(
                json.dumps(
                    {
                        "id": j["evolink_task_id"],
                        "status": "completed",
                        "results": ["https://cdn.bench/u.png"],
                    }
                )
                for j in jobs
            )

            async def callback() -> httpx.Response:
                return await client.post(next(paths), content=next(bodies))

            callbacks = await timed(callback, ROUNDS)
            lines.append(summary("POST callback (deferred, verified)", callbacks, baseline))

            listing = await timed(lambda: client.get("/v1/jobs", params={"limit": 50}), ROUNDS)
            lines.append(summary("GET /v1/jobs?limit=50", listing, baseline))
            lines.append(f"{'submissions per second (serial)':<34} {rate:7.1f}")

            ratio = statistics.median(callbacks) * 1000 / baseline
            p95 = statistics.quantiles(callbacks, n=20)[-1] * 1000
            verdict = "met" if ratio < GOAL_RATIO and p95 < GOAL_P95_MS else "NOT met"
            lines.append(
                f"callback goal (x<{GOAL_RATIO} readyz at p50, p95<{GOAL_P95_MS} ms): {verdict}"
            )
    return lines


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        targets = {"sqlite": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"}
        if os.environ.get("TEST_DATABASE_URL"):
            targets["postgresql"] = os.environ["TEST_DATABASE_URL"]
        for name, url in targets.items():
            if name == "postgresql":
                from tests.support.databases import reset_postgres

                reset_postgres(url)
            upgrade(url)
            print(f"\n== {name} ({ROUNDS} requests each, in-process ASGI) ==")
            for line in asyncio.run(bench(url)):
                print(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
