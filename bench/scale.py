"""`make bench-scale`: the read paths and /metrics at 100 k jobs and at 10 M, in one run.

Seeds a throwaway PostgreSQL database (BENCH_SCALE_DATABASE_URL, default
postgresql+asyncpg://postgres@127.0.0.1:5432/evolink_jobs_scale, dropped and recreated) with
`generate_series` (finished jobs with one event each), measures with wrk against `serve`, grows
the table to ROWS (default 10,000,000), measures again, and prints p99 side by side with the
ratio (target: within 1.5x). It also prints how the background queries are planned (EXPLAIN):
an index, never a sequential scan of jobs. Settings: ROWS, SMALL_ROWS (default 100,000),
BENCH_SECONDS (per path, default 5), BENCH_CONNECTIONS (default 16).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Select, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import async_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_CONNECTIONS", "16")
os.environ.setdefault("BENCH_SECONDS", "5")

from app.archive.models import ArchiveImage  # noqa: E402
from app.db import create_engine, utcnow  # noqa: E402
from app.jobs import repository  # noqa: E402
from app.jobs.models import FINAL_STATUSES, Job, JobStatus, SubmitState  # noqa: E402
from app.migrations import upgrade  # noqa: E402
from bench import load, seed  # noqa: E402
from tests.support.databases import redact, reset_postgres  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/evolink_jobs_scale"
ROWS = int(os.environ.get("ROWS", "10000000"))
SMALL = int(os.environ.get("SMALL_ROWS", "100000"))
GROUP = "scale"
PAGES_DEEP = 20
DIALECT = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]


async def grow(url: str, first: int, last: int) -> float:
    """Seed jobs first..last of the group (and an event each); seconds it took."""
    engine = create_engine(url)
    started = time.monotonic()
    try:
        await seed.seed_jobs(engine, GROUP, last, final=True, events=True, start=first)
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()
    return time.monotonic() - started


async def statistics_seconds(url: str) -> float:
    """How long one refresh of the /metrics snapshot takes (it runs in the background)."""
    engine = create_engine(url)
    try:
        async with async_sessionmaker(engine)() as session:
            started = time.monotonic()
            await repository.job_statistics(session, utcnow())
            return time.monotonic() - started
    finally:
        await engine.dispose()


def background_queries() -> dict[str, Select[Any]]:
    """The statements background work runs, as the worker builds them."""
    now = utcnow()
    return {
        "claim due jobs": select(Job.id)
        .where(Job.next_attempt_at <= now, Job.claim_expires_at.is_(None))
        .order_by(Job.next_attempt_at)
        .limit(32),
        "release claims at shutdown": select(Job.id).where(Job.claimed_by == "owner"),
        "jobs to archive": select(Job.id).where(Job.archive_status == "pending").limit(32),
        "archive images due": select(ArchiveImage.job_id)
        .where(ArchiveImage.next_attempt_at <= now)
        .limit(32),
        "purge: finished before": select(Job.id)
        .where(Job.completed_at < now - timedelta(days=30), Job.status.in_(FINAL_STATUSES))
        .order_by(Job.completed_at)
        .limit(500),
        "metrics: submission queue": select(func.count()).where(
            Job.status == JobStatus.QUEUED, Job.submit_state == SubmitState.WAITING
        ),
        "metrics: due backlog": select(func.count()).where(
            Job.next_attempt_at <= now, Job.status.not_in(FINAL_STATUSES)
        ),
    }


async def explain(url: str) -> list[str]:
    """The top of each background query's plan."""
    engine = create_engine(url)
    lines = []
    try:
        async with engine.connect() as connection:
            for name, query in background_queries().items():
                sql = str(query.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True}))
                plan = (await connection.execute(text("EXPLAIN " + sql))).scalars().all()
                scans = [p.strip() for p in plan if "Scan" in p]
                lines.append(f"  {name:<28} {' / '.join(scans)[:110]}")
    finally:
        await engine.dispose()
    return lines


def measure(url: str, logs: Path, rows: int) -> dict[str, load.Figures | float]:
    """The read paths under wrk, and a /metrics scrape, against a fresh `serve`."""
    figures: dict[str, load.Figures | float] = {}
    ids = {i: seed.job_id(GROUP, i) for i in range(1, rows + 1, max(1, rows // 20_000))}
    with load.Server(load.uvicorn("bench.standin:app"), load.base_env(), "/_count",
                     logs / "standin.log") as evo:  # fmt: skip
        env = load.service_env(url, evo.url, True, logs)
        cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port",
               "{port}"]  # fmt: skip
        with load.Server(cmd, env, "/readyz", logs / "serve-scale.log") as service:
            headers = {"Authorization": f"Bearer {load.KEY}"}
            cursor = None
            for _ in range(PAGES_DEEP):
                page = httpx.get(f"{service.url}/v1/jobs", params={"limit": 20,
                                 **({"cursor": cursor} if cursor else {})},
                                 headers=headers, timeout=30).json()  # fmt: skip
                cursor = page["next_cursor"]
            figures["lookup"] = load.wrk(service.url, load.lookup_lines(ids), load.KEY)
            figures["list"] = load.wrk(service.url, ["GET\t/v1/jobs?limit=20\t"], load.KEY)
            deep = f"GET\t/v1/jobs?limit=20&cursor={cursor}\t"
            figures["list_deep"] = load.wrk(service.url, [deep], load.KEY)
            events = [f"GET\t/v1/jobs/{ids[i]}/events\t" for i in sorted(ids)]
            figures["events"] = load.wrk(service.url, events, load.KEY)
            scrapes = []
            for _ in range(20):
                started = time.monotonic()
                assert httpx.get(f"{service.url}/metrics", timeout=30).status_code == 200
                scrapes.append(time.monotonic() - started)
            figures["metrics_ms"] = statistics.median(scrapes) * 1000
            figures["metrics_max_ms"] = max(scrapes) * 1000
    figures["refresh_s"] = asyncio.run(statistics_seconds(url))
    return figures


LABELS = {
    "lookup": "GET /v1/jobs/{id}",
    "list": "GET /v1/jobs?limit=20",
    "list_deep": f"  ... {PAGES_DEEP} pages deep",
    "events": "GET /v1/jobs/{id}/events",
}


def main() -> None:
    load.ensure_wrk()
    url = os.environ.get("BENCH_SCALE_DATABASE_URL", DEFAULT_URL)
    logs = Path(tempfile.mkdtemp(prefix="evolink-bench-scale-"))
    reset_postgres(url)
    upgrade(url)
    took = asyncio.run(grow(url, 1, SMALL))
    print(f"seeded {SMALL:,} jobs and events in {took:.0f} s", flush=True)
    small = measure(url, logs, SMALL)
    took = asyncio.run(grow(url, SMALL + 1, ROWS))
    print(f"grew to {ROWS:,} jobs and events in {took:.0f} s", flush=True)
    big = measure(url, logs, ROWS)
    print(f"\n== {redact(url)}: {SMALL:,} vs {ROWS:,} jobs; wrk {load.CONNECTIONS} connections ==")
    print(f"{'path':<26} {'p99 small':>10} {'p99 large':>10} {'ratio':>6}  req/s small -> large")
    for path, label in LABELS.items():
        a, b = small[path], big[path]
        assert isinstance(a, load.Figures) and isinstance(b, load.Figures)
        verdict = "met" if b.p99_ms <= 1.5 * a.p99_ms else "NOT met"
        print(f"{label:<26} {a.p99_ms:8.1f}ms {b.p99_ms:8.1f}ms {b.p99_ms / a.p99_ms:5.2f}x"
              f"  {a.rate:6.0f} -> {b.rate:6.0f}  (<= 1.5x: {verdict})")  # fmt: skip
    print(f"{'GET /metrics (median of 20)':<26} {small['metrics_ms']:8.1f}ms "
          f"{big['metrics_ms']:8.1f}ms   (target < 100 ms, flat)")  # fmt: skip
    print(f"{'GET /metrics (slowest)':<26} {small['metrics_max_ms']:8.1f}ms "
          f"{big['metrics_max_ms']:8.1f}ms")  # fmt: skip
    print(f"{'snapshot refresh (background)':<26} {small['refresh_s']:8.2f}s  "
          f"{big['refresh_s']:8.2f}s   (one connection, >= 10x its cost apart)")  # fmt: skip
    print(f"\nbackground queries at {ROWS:,} jobs (EXPLAIN):")
    print("\n".join(asyncio.run(explain(url))))


if __name__ == "__main__":
    main()
