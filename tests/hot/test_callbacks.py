"""The hot callback does what the callbacks route does, and hands it everything else whole."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import select

from app.config import Settings
from app.notifications.models import Notification
from tests.conftest import client_for, make_settings
from tests.hot.test_lookup import hot
from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit
from tests.support.rows import Sessions, set_job, stored

COMPARED = ("status", "evolink_task_id", "progress", "results", "submit_state", "error_code")


@pytest.fixture(params=[True, False], ids=["verify", "trust"])
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    return make_settings(database_url, verify_callbacks=request.param)


@pytest.fixture
def postgres_only(app: FastAPI) -> None:
    if app.state.hot_database is None:
        pytest.skip("the hot paths run on PostgreSQL only")


async def two_jobs(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> tuple[tuple[dict[str, Any], str], tuple[dict[str, Any], str]]:
    return (
        await submit(client, evolink, task_id="task-unified-hot"),
        await submit(client, evolink, task_id="task-unified-route"),
    )


async def events(client: httpx.AsyncClient, job_id: str) -> list[tuple[Any, ...]]:
    data = (await client.get(f"/v1/jobs/{job_id}/events")).json()["data"]
    return [(e["source"], e["status"], e["outcome"], e["detail"], e["body"]) for e in data]


@pytest.mark.usefixtures("postgres_only")
async def test_a_first_callback_leaves_the_job_as_the_route_would(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: Sessions,
    settings: Settings,
) -> None:
    (hot_job, hot_path), (route_job, route_path) = await two_jobs(client, evolink)
    answered = hot("answered", "callback")
    via_hot = await anonymous.post(hot_path, json=payloads.completed_task("task-unified-hot"))
    assert hot("answered", "callback") == answered + 1
    # A query string (which the route ignores) keeps a request off the hot path.
    via_route = await anonymous.post(
        route_path, params={"via": "fastapi"}, json=payloads.completed_task("task-unified-route")
    )
    assert hot("answered", "callback") == answered + 1

    assert via_hot.status_code == via_route.status_code == 200
    assert via_hot.json() == via_route.json()
    expected = "deferred" if settings.verify_callbacks else "applied"
    assert via_hot.json() == {"outcome": expected}
    hot_row = await stored(session_factory, hot_job["id"])
    route_row = await stored(session_factory, route_job["id"])
    for name in COMPARED:
        if name != "evolink_task_id":
            assert getattr(hot_row, name) == getattr(route_row, name), name
    assert hot_row.evolink_task_id == "task-unified-hot"
    for name in ("callback_received_at", "confirm_requested_at", "next_attempt_at"):
        assert (getattr(hot_row, name) is None) == (getattr(route_row, name) is None), name
    assert hot_row.confirm_task_id == ("task-unified-hot" if settings.verify_callbacks else None)
    hot_events, route_events = (
        await events(client, hot_job["id"]),
        await events(client, route_job["id"]),
    )
    assert [e[:4] for e in hot_events] == [e[:4] for e in route_events]
    assert hot_events[-1][4]["id"] == "task-unified-hot"


@pytest.mark.usefixtures("postgres_only")
async def test_a_burst_of_one_callback_makes_one_change_and_one_confirmation(
    app: FastAPI,
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: Sessions,
    settings: Settings,
) -> None:
    job, path = await submit(client, evolink, task_id="task-unified-burst")
    body = payloads.completed_task("task-unified-burst")
    senders = [client_for(app, None) for _ in range(12)]
    answers = await asyncio.gather(*(s.post(path, json=body) for s in senders))
    await asyncio.gather(*(s.aclose() for s in senders))
    outcomes = sorted(a.json()["outcome"] for a in answers)
    if settings.verify_callbacks:
        # Every repeat is deferred too (debounced: it asks for no poll of its own).
        assert outcomes == ["deferred"] * 12
    else:
        assert outcomes == ["applied"] + ["duplicate"] * 11
    kept = [e for e in await events(client, job["id"]) if e[0] == "callback"]
    assert len(kept) == 12
    row = await stored(session_factory, job["id"])
    assert row.evolink_task_id == "task-unified-burst"


@pytest.mark.usefixtures("postgres_only")
async def test_what_the_hot_path_does_not_take_reaches_the_route_with_its_whole_body(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
) -> None:
    job, path = await submit(client, evolink, task_id="task-unified-odd")
    answered = hot("answered", "callback")
    junk = await anonymous.post(path, content=b'{"not": "a task"}')
    assert junk.status_code == 400
    assert junk.json()["code"] == "callback_malformed"
    huge = json.dumps({**payloads.completed_task("task-unified-odd"), "pad": "x" * 70_000})
    too_large = await anonymous.post(path, content=huge.encode())
    assert too_large.status_code == 413
    wrong_token = await anonymous.post(path[:-3] + "AAA", json=payloads.completed_task())
    assert wrong_token.status_code == 404
    unknown_status = {**payloads.completed_task("task-unified-odd"), "status": "exploded"}
    assert (await anonymous.post(path, json=unknown_status)).json() == {"outcome": "rejected"}
    assert hot("answered", "callback") == answered
    recorded = await events(client, job["id"])
    assert [e[2] for e in recorded if e[0] == "callback"] == ["rejected"] * 3
    assert recorded[-3][4] == {"not": "a task"}, "the route read the body the hot path had read"


@pytest.mark.usefixtures("postgres_only")
async def test_another_jobs_task_is_refused_as_the_route_refuses_it(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
) -> None:
    await submit(client, evolink, task_id="task-unified-one")
    _, second_path = await submit(client, evolink, task_id="task-unified-two")
    crossed = await anonymous.post(second_path, json=payloads.completed_task("task-unified-one"))
    assert crossed.status_code == 409
    assert crossed.headers["content-type"] == "application/problem+json"
    assert crossed.json()["code"] == "task_mismatch"


@pytest.mark.usefixtures("postgres_only")
async def test_a_failure_whose_webhook_goes_through_the_outbox_is_queued_as_the_route_queues_it(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: Sessions,
    settings: Settings,
) -> None:
    if settings.verify_callbacks:
        pytest.skip("a verified callback is applied by the worker's confirmation")
    job, path = await submit(client, evolink, task_id="task-unified-hooked")
    await set_job(session_factory, job["id"], notify_url="https://hooks.example/jobs")
    ended = await anonymous.post(path, json=payloads.failed_task("task-unified-hooked"))
    assert ended.json() == {"outcome": "applied"}
    async with session_factory() as session:
        queued = (
            await session.scalars(select(Notification).where(Notification.job_id == job["id"]))
        ).all()
    assert [(n.type, n.url) for n in queued] == [("job.failed", "https://hooks.example/jobs")]
    assert (await stored(session_factory, job["id"])).status == "failed"
