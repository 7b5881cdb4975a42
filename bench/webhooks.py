"""Webhook delivery: how many events a process delivers per second, and their outbox lag.

Run with `.venv/bin/python bench/webhooks.py [N]` (SQLite; set TEST_DATABASE_URL to use that
PostgreSQL database instead, which this script resets). N jobs (default 300) with a notify_url
fail at once, each writing one event into the outbox in its own transaction; one delivery worker
(WORKER_BATCH_SIZE concurrent POSTs) then delivers them to a local receiver that verifies every
signature with `standardwebhooks`. Shared, noisy machines: read the figures as orders of magnitude.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook
from starlette.requests import Request
from starlette.responses import Response

from app.config import Settings
from app.db import create_engine, create_session_factory
from app.evolink.schemas import Task
from app.jobs import service as jobs_service
from app.jobs.models import EventSource
from app.jobs.schemas import JobCreate
from app.jobs.state_machine import Observation, apply_observation
from app.logs import configure_logging
from app.notifications.models import Notification
from app.notifications.worker import build_notification_worker
from tests.support import databases
from tests.support.http_server import ScriptedServer, serving


def database(tmp: Path) -> str:
    """A fresh, migrated database."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        url += "_bench_webhooks"
        databases.reset_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    databases.migrate(url)
    return url


async def main(count: int, tmp: Path, url: str) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    (tmp / "callers.toml").write_text(
        f'[callers.bench]\napi_key = "bench-key-0123456789"\nwebhook_secrets = ["{secret}"]\n'
    )
    settings = Settings(
        _env_file=None, database_url=url, archive_url="off", callers_file=tmp / "callers.toml",
        notify_allowed_hosts="127.0.0.1/32", log_level="WARNING",
    )  # fmt: skip
    verifier, bad = Webhook(secret), []

    async def receive(request: Request) -> Response:
        body = await request.body()
        try:
            verifier.verify(body, dict(request.headers))
        except Exception as exc:
            bad.append(exc)
        return Response("ok")

    server = ScriptedServer()
    hook = server.route("/hook", receive)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    worker = build_notification_worker(settings, sessions)
    with serving(server):
        worker.start()  # delivering while events are written, as in production
        started = time.perf_counter()
        for index in range(count):
            await fail_one(sessions, hook, index)
        written = time.perf_counter() - started
        while server.hits["/hook"] < count:  # noqa: ASYNC110 - counted in the server's thread
            await asyncio.sleep(0.01)
        delivered = time.perf_counter() - started
        await worker.stop(5)
    async with sessions() as session:
        rows = (await session.scalars(select(Notification))).all()
    await engine.dispose()
    lags = sorted((n.delivered_at - n.created_at).total_seconds() for n in rows if n.delivered_at)
    kind = "postgresql" if url.startswith("postgresql") else "sqlite"
    p95 = lags[int(len(lags) * 0.95) - 1]
    print(
        f"{kind}: {count} jobs failed, one event each, written in {written:.2f} s; all "
        f"{len(lags)} delivered {delivered:.2f} s after the first; bad signatures: {len(bad)}"
    )
    print(f"  lag, event written -> delivered (WORKER_INTERVAL_SECONDS "
          f"{settings.worker_interval_seconds:g}): p50 {statistics.median(lags):.2f} s, "
          f"p95 {p95:.2f} s, max {lags[-1]:.2f} s")  # fmt: skip


async def fail_one(sessions: async_sessionmaker[AsyncSession], hook: str, index: int) -> None:
    """A job with a notify_url, failed by EvoLink: its event goes into the outbox."""
    async with sessions() as session:
        body = JobCreate.model_validate({"prompt": f"bench {index}", "notify_url": hook})
        job = await jobs_service.create_job(session, "bench", body, {})
        await session.commit()
    task = {"id": f"task-unified-{job.id.hex}", "status": "failed", "progress": 0,
            "error": {"code": "content_policy_violation", "message": "no"}}  # fmt: skip
    async with sessions() as session:
        await apply_observation(
            session, job.id, Observation(Task.model_validate(task), EventSource.POLL)
        )
        await session.commit()


if __name__ == "__main__":
    configure_logging("INFO", open(os.devnull, "w"))  # noqa: SIM115 - as in production, discarded
    directory = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    asyncio.run(
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, directory, database(directory))
    )
