"""Each limit refuses with 429 quota_exceeded, its figures and Retry-After, and nothing is left
behind; windows roll over on the (frozen) clock, never by sleeping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import respx
from sqlalchemy import func, select

from app.jobs.models import Job
from app.spend.models import SpendEntry
from tests.spend.conftest import Clock, SpendAppFactory, callback, callback_path, clients
from tests.support import evolink_payloads as payloads

JOB = {"prompt": "a lighthouse"}


async def count_rows(app: Any, model: type[Any]) -> int:
    async with app.state.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def assert_refused(answer: Any, limit: str, value: float, used: float, requested: float) -> int:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "quota_exceeded"
    assert (problem["limit"], problem["value"], problem["used"], problem["requested"]) == (
        limit,
        value,
        used,
        requested,
    )
    assert limit in problem["detail"]
    retry_after = int(answer.headers["Retry-After"])
    assert problem["retry_after"] == retry_after
    return retry_after


async def test_jobs_per_minute_refuses_until_the_next_utc_minute(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with spend_app(limits={"jobs_per_minute": 2}) as app, clients(app) as (capped, other, _):
        for _ in range(2):
            assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202
        refused = await capped.post("/v1/jobs", json=JOB)
        # Frozen at 10:00:15: the minute frees room in 45 s.
        assert assert_refused(refused, "jobs_per_minute", 2, 2, 1) == 45
        assert refused.json()["scope"] == "caller"
        assert refused.json()["resets_at"] == "2026-12-01T10:01:00Z"
        assert evolink_accepts.call_count == 2, "a refused create must not reach EvoLink"
        assert await count_rows(app, Job) == 2, "a refused create must leave no job row"
        assert await count_rows(app, SpendEntry) == 2
        # Another caller is not limited by capped's limits.
        assert (await other.post("/v1/jobs", json=JOB)).status_code == 202

        clock.advance(seconds=44)
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 429
        clock.advance(seconds=1)  # 10:01:00, a new minute
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202


async def test_credits_per_day_refuses_until_utc_midnight_and_the_next_day_starts_afresh(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    clock.set(datetime(2026, 12, 1, 23, 59, 30, tzinfo=UTC))
    async with spend_app(limits={"credits_per_day": 7.5}) as app, clients(app) as (capped, _, _):
        assert (await capped.post("/v1/jobs", json={**JOB, "n": 2})).status_code == 202
        refused = await capped.post("/v1/jobs", json={**JOB, "n": 2})
        assert assert_refused(refused, "credits_per_day", 7.5, 5, 5) == 30
        # A smaller job still fits: the limit is on credits, not jobs.
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202
        assert_refused(await capped.post("/v1/jobs", json=JOB), "credits_per_day", 7.5, 7.5, 2.5)

        clock.set(datetime(2026, 12, 2, 0, 0, 0, tzinfo=UTC))
        assert (await capped.post("/v1/jobs", json={**JOB, "n": 2})).status_code == 202
        usage = (await capped.get("/v1/usage")).json()
        day = next(limit for limit in usage["limits"] if limit["name"] == "credits_per_day")
        assert (day["used"], day["remaining"]) == (5, 2.5)
        assert usage["today"]["credits"] == 5 and usage["month"]["credits"] == 12.5
        assert evolink_accepts.call_count == 3


async def test_credits_per_month_refuses_until_the_first_of_the_next_month(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    clock.set(datetime(2026, 11, 30, 23, 0, 0, tzinfo=UTC))
    async with spend_app(limits={"credits_per_month": 10}) as app, clients(app) as (capped, _, _):
        assert (await capped.post("/v1/jobs", json={**JOB, "n": 4})).status_code == 202
        refused = await capped.post("/v1/jobs", json=JOB)
        assert assert_refused(refused, "credits_per_month", 10, 10, 2.5) == 3600
        assert refused.json()["resets_at"] == "2026-12-01T00:00:00Z"
        clock.set(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
        assert (await capped.post("/v1/jobs", json={**JOB, "n": 4})).status_code == 202
        assert evolink_accepts.call_count == 2


async def test_jobs_in_flight_refuses_until_a_job_ends(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with (
        spend_app(limits={"jobs_in_flight": 2}, verify_callbacks=False) as app,
        clients(app) as (capped, _, _),
    ):
        first = (await capped.post("/v1/jobs", json=JOB)).json()
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202
        clock.advance(seconds=30)
        refused = await capped.post("/v1/jobs", json=JOB)
        # The oldest job in flight is 30 s old; jobs take about 100 s.
        assert assert_refused(refused, "jobs_in_flight", 2, 2, 1) == 70
        assert refused.json()["resets_at"] is None

        path, task_id = callback_path(evolink_accepts, 0)
        await callback(app, path, payloads.failed_task(task_id))
        assert (await capped.get(f"/v1/jobs/{first['id']}")).json()["status"] == "failed"
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 429


async def test_the_global_credits_per_day_binds_all_callers_together(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with (
        spend_app(global_limits={"credits_per_day": 5}) as app,
        clients(app) as (capped, other, ops),
    ):
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202
        assert (await other.post("/v1/jobs", json=JOB)).status_code == 202
        refused = await ops.post("/v1/jobs", json=JOB)
        assert assert_refused(refused, "credits_per_day", 5, 5, 2.5) > 0
        assert refused.json()["scope"] == "global"
        assert "all callers" in refused.json()["detail"]
        assert evolink_accepts.call_count == 2


async def test_a_failed_job_gives_its_credits_back_and_a_completed_one_keeps_them(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with (
        spend_app(limits={"credits_per_day": 5}, verify_callbacks=False) as app,
        clients(app) as (capped, _, _),
    ):
        assert (await capped.post("/v1/jobs", json={**JOB, "n": 2})).status_code == 202
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 429

        path, task_id = callback_path(evolink_accepts, 0)
        await callback(app, path, payloads.failed_task(task_id, code="generation_timeout"))
        assert (await capped.post("/v1/jobs", json={**JOB, "n": 2})).status_code == 202

        path, task_id = callback_path(evolink_accepts, 1)
        await callback(app, path, payloads.completed_task(task_id, results=["https://r/0.png"] * 2))
        refused = await capped.post("/v1/jobs", json=JOB)
        assert_refused(refused, "credits_per_day", 5, 5, 2.5)


async def test_a_refused_create_does_not_use_up_its_idempotency_key(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with spend_app(limits={"jobs_per_minute": 1}) as app, clients(app) as (capped, _, _):
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202
        headers = {"Idempotency-Key": "order-7"}
        assert (await capped.post("/v1/jobs", json=JOB, headers=headers)).status_code == 429
        clock.advance(minutes=1)
        accepted = await capped.post("/v1/jobs", json=JOB, headers=headers)
        assert accepted.status_code == 202 and "Idempotent-Replayed" not in accepted.headers
        assert evolink_accepts.call_count == 2
