"""Background work logs one line when the database goes away and one when it is back."""

from __future__ import annotations

from fastapi import FastAPI
from structlog.testing import capture_logs

from app.config import Settings
from app.worker.runner import build_worker
from tests.support.pg_cluster import PostgresCluster


async def test_the_worker_logs_an_outage_once_not_a_trace_per_tick(
    app: FastAPI, settings: Settings, cluster: PostgresCluster
) -> None:
    worker = build_worker(settings, app.state.session_factory, app.state.submitter)
    await worker.tick_reporting_failures()
    cluster.stop("fast")
    try:
        with capture_logs() as outage:
            for _ in range(4):
                await worker.tick_reporting_failures()
    finally:
        cluster.start()
    with capture_logs() as recovery:
        for _ in range(2):
            await worker.tick_reporting_failures()

    assert [e["event"] for e in outage] == ["worker_database_unavailable"]
    assert outage[0]["log_level"] == "warning"
    assert "exc_info" not in outage[0]
    assert [e["event"] for e in recovery] == ["worker_database_recovered"]


async def test_a_bug_in_a_tick_is_still_logged_with_its_trace(
    app: FastAPI, settings: Settings, cluster: PostgresCluster
) -> None:
    """Only outages are quiet: SQL that does not match the schema is reported every time."""
    worker = build_worker(settings, app.state.session_factory, app.state.submitter)
    await cluster.execute(
        "ALTER TABLE jobs RENAME COLUMN next_attempt_at TO renamed", database="evolink_jobs"
    )
    try:
        with capture_logs() as logs:
            for _ in range(2):
                await worker.tick_reporting_failures()
    finally:
        await cluster.execute(
            "ALTER TABLE jobs RENAME COLUMN renamed TO next_attempt_at", database="evolink_jobs"
        )
    assert [e["event"] for e in logs] == ["worker_tick_failed", "worker_tick_failed"]
    assert all(e.get("exc_info") for e in logs)
