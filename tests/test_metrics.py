"""`/metrics` shows every figure operators watch, and each one moves when the service works."""

from __future__ import annotations

import httpx
import pytest
import respx
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.worker.runner import Worker
from tests.conftest import make_settings
from tests.support import evolink_payloads as payloads
from tests.support.jobs import complete, submit
from tests.support.rows import Sessions, make_due

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Gauges read on each scrape, so that these tests see every change at once."""
    return make_settings(database_url, metrics_refresh_seconds=0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_every_figure_moves(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
) -> None:
    before = await scrape(anonymous)

    # A job that completes: its callback is deferred, a poll confirms it.
    job, path = await submit(client, evolink)
    await complete(anonymous, evolink, worker, path)
    # A duplicate, a stale and a rejected delivery.
    await anonymous.post(path, json=payloads.completed_task())
    await anonymous.post(path, json=payloads.processing_task())
    await anonymous.post(path, content=b"not json", headers={"Content-Type": "application/json"})
    # A job EvoLink cannot take now: it waits in the submission queue, due for a retry.
    evolink.post("/v1/images/generations").mock(
        return_value=httpx.Response(503, json=payloads.integer_error(503, "down", "unavailable"))
    )
    queued = (await client.post("/v1/jobs", json={"prompt": "later"})).json()
    assert queued["status"] == "queued"

    after = await scrape(anonymous)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    post_jobs = {"method": "POST", "route": "/v1/jobs"}
    assert moved("evolink_jobs_http_requests_total", status="202", **post_jobs) == 2
    assert moved("evolink_jobs_http_request_duration_seconds_count", **post_jobs) == 2
    for outcome in ("deferred", "duplicate", "stale", "rejected"):
        assert moved("evolink_jobs_callbacks_total", outcome=outcome) == 1, outcome
    assert moved("evolink_jobs_jobs_finished_total", source="poll", status="completed") == 1
    create = {"operation": "create_task"}
    assert moved("evolink_jobs_evolink_requests_total", status="200", code="", **create) == 1
    assert (
        moved("evolink_jobs_evolink_requests_total", status="503", code="unavailable", **create)
        == 1
    )
    assert (
        moved("evolink_jobs_evolink_requests_total", operation="get_task", status="200", code="")
        == 1
    )
    assert moved("evolink_jobs_evolink_request_duration_seconds_count", **create) == 2

    assert value(after, "evolink_jobs_jobs", status="completed") == 1
    assert value(after, "evolink_jobs_jobs", status="queued") == 1
    assert value(after, "evolink_jobs_final_jobs", final_source="poll", callback="true") == 1
    assert value(after, "evolink_jobs_submission_queue_depth") == 1
    assert value(before, "evolink_jobs_submission_queue_depth") == 0
    assert job["id"] != queued["id"]


async def test_backlog_counts_jobs_whose_check_is_due(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: Sessions,
) -> None:
    evolink.post("/v1/images/generations").mock(side_effect=httpx.ConnectError("refused"))
    job = (await client.post("/v1/jobs", json={"prompt": "retried after a backoff"})).json()
    samples = await scrape(anonymous)
    assert value(samples, "evolink_jobs_submission_queue_depth") == 1
    assert value(samples, "evolink_jobs_reconciler_backlog") == 0  # not due yet

    await make_due(session_factory, job["id"])
    samples = await scrape(anonymous)
    assert value(samples, "evolink_jobs_reconciler_backlog") == 1
