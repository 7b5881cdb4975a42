"""`GET /metrics`: Prometheus text, with the database's job gauges read at scrape time."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.db import SessionDep, utcnow
from app.jobs import repository as jobs_repository
from app.jobs.models import JobStatus
from app.metrics import FINAL_JOBS, JOBS, RECONCILER_BACKLOG, REGISTRY, SUBMISSION_QUEUE

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(session: SessionDep) -> Response:
    """Counters of this process, and gauges of the database's jobs read now."""
    snapshot = await jobs_repository.job_statistics(session, utcnow())
    for status in JobStatus:
        JOBS.labels(status=status).set(snapshot.by_status.get(status, 0))
    FINAL_JOBS.clear()
    for (source, called_back), count in snapshot.final_by_source.items():
        FINAL_JOBS.labels(final_source=source, callback=str(called_back).lower()).set(count)
    RECONCILER_BACKLOG.set(snapshot.due)
    SUBMISSION_QUEUE.set(snapshot.waiting_to_submit)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
