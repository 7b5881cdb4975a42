"""Shutting down while the database is away: no exception out of shutdown, one warning, no trace.

The claims cannot be released then; their leases lapse and another process takes them over.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from structlog.testing import capture_logs

from app.config import Settings
from app.main import create_app
from app.worker.claims import release_claims
from app.worker.runner import build_worker
from tests.support.pg_cluster import PostgresCluster


async def test_worker_stop_and_release_claims_survive_a_database_outage(
    app: FastAPI, settings: Settings, cluster: PostgresCluster
) -> None:
    worker = build_worker(settings, app.state.session_factory, app.state.submitter)
    worker.start()
    await worker.tick_reporting_failures()  # the pool holds a live connection
    cluster.stop("fast")
    try:
        with capture_logs() as logs:
            await asyncio.wait_for(worker.stop(grace_seconds=0.1), timeout=60)
            released = await asyncio.wait_for(
                release_claims(app.state.session_factory, worker.owner), timeout=60
            )
    finally:
        cluster.start()

    assert released == 0
    failures = [e for e in logs if e["event"] == "release_claims_failed"]
    assert len(failures) == 2 and all(e["log_level"] == "warning" for e in failures)
    assert not [e for e in logs if e.get("exc_info")], "an outage is not a stack trace"
    assert [e for e in logs if e["event"] == "worker_stopped"]


async def test_the_whole_shutdown_survives_a_database_outage(
    settings: Settings, cluster: PostgresCluster, tmp_path: Path
) -> None:
    """serve's lifespan, with its worker and archiver, ends cleanly while PostgreSQL is down."""
    application = create_app(
        settings.model_copy(update={"archive_url": f"file://{tmp_path}"}), run_worker=True
    )
    manager = LifespanManager(application)
    await manager.__aenter__()
    cluster.stop("fast")
    try:
        with capture_logs() as logs:
            await asyncio.wait_for(manager.__aexit__(None, None, None), timeout=60)
    finally:
        cluster.start()
    assert not [e for e in logs if e.get("exc_info")], [e["event"] for e in logs]
    assert [e for e in logs if e["event"] == "stopped"]
