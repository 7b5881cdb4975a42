"""`/metrics` reads a snapshot: scrapes never use the request pool, and METRICS_TOKEN guards it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import event

from app.config import Settings
from app.metrics_snapshot import JobGauges
from tests.conftest import client_for, make_settings
from tests.support import evolink_payloads as payloads
from tests.test_metrics import scrape, value

TOKEN = "metrics-token-0123456789"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Background refresh, rare enough that it never runs during a test after the first one."""
    return make_settings(database_url, metrics_refresh_seconds=3600, metrics_token=TOKEN)


def count_checkouts(app: FastAPI) -> list[int]:
    """A list that grows by one each time a request-pool connection is checked out."""
    checkouts: list[int] = []

    def on_checkout(*_: Any) -> None:
        checkouts.append(1)

    event.listen(app.state.engine.sync_engine, "checkout", on_checkout)
    return checkouts


async def test_scrapes_read_the_snapshot_not_the_request_pool(
    app: FastAPI, client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    async with client_for(app, TOKEN) as metrics:
        gauges: JobGauges = app.state.job_gauges
        await gauges.refresh()
        before = await scrape(metrics)
        evolink.post("/v1/images/generations").mock(
            return_value=httpx.Response(200, json=payloads.created_task())
        )
        assert (await client.post("/v1/jobs", json={"prompt": "counted later"})).status_code == 202

        checkouts = count_checkouts(app)
        for _ in range(20):
            during = await scrape(metrics)
        assert checkouts == []  # not one scrape took a connection from requests
        # ...so the figures are the snapshot's, until the next refresh.
        pending = value(before, "evolink_jobs_jobs", status="pending")
        assert value(during, "evolink_jobs_jobs", status="pending") == pending

        await gauges.refresh()
        after = await scrape(metrics)
        assert value(after, "evolink_jobs_jobs", status="pending") == pending + 1
        assert value(after, "evolink_jobs_metrics_snapshot_age_seconds") >= 0
        assert checkouts == []


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}"])
async def test_metrics_token_is_required_when_set(app: FastAPI, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with client_for(app, None) as anonymous:
        response = await anonymous.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated"
    assert TOKEN not in response.text


async def test_metrics_token_opens_it(app: FastAPI) -> None:
    async with client_for(app, TOKEN) as metrics:
        response = await metrics.get("/metrics")
    assert response.status_code == 200
    assert "evolink_jobs_jobs" in response.text


def test_short_metrics_token_is_refused(database_url: str) -> None:
    with pytest.raises(ValidationError, match="metrics_token"):
        make_settings(database_url, metrics_token="short")
    assert make_settings(database_url, metrics_token="").metrics_token is None
