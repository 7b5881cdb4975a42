"""The ledger: the price held at create, EvoLink's reservation recorded, the cost settled at the
end (nothing for what EvoLink does not bill), and replays never counted twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.spend.models import EntryState, SpendEntry
from app.worker.runner import build_worker
from tests.conftest import client_for
from tests.hot.test_lookup import hot
from tests.spend.conftest import (
    CREATE,
    Clock,
    SpendAppFactory,
    callback,
    callback_path,
    clients,
)
from tests.support import evolink_payloads as payloads
from tests.support.rows import ago, set_job

JOB = {"prompt": "a heron"}
TASK = "task-unified-1757156493-ledger"


async def entry(app: Any, job_id: str) -> SpendEntry:
    sessions: async_sessionmaker[AsyncSession] = app.state.session_factory
    async with sessions() as session:
        found = await session.get(SpendEntry, uuid.UUID(job_id))
        assert found is not None
        return found


async def test_an_idempotent_replay_is_never_counted_twice(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with spend_app(limits={"credits_per_day": 5}) as app, clients(app) as (capped, _, _):
        headers = {"Idempotency-Key": "hero-image-1"}
        first = await capped.post("/v1/jobs", json=JOB, headers=headers)
        assert first.status_code == 202
        for _ in range(3):
            replay = await capped.post("/v1/jobs", json=JOB, headers=headers)
            assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
            assert replay.json()["id"] == first.json()["id"]
        usage = (await capped.get("/v1/usage")).json()
        assert usage["today"]["jobs"] == 1 and usage["today"]["credits"] == 2.5
        limits = {limit["name"]: limit for limit in usage["limits"] if limit["scope"] == "caller"}
        assert limits["credits_per_day"]["used"] == 2.5
        assert limits["jobs_per_minute"]["used"] == 1
        assert limits["jobs_in_flight"]["used"] == 1
        # The room the replays did not take is still there for one more job.
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 429
        assert evolink_accepts.call_count == 2


async def test_racing_replays_of_one_key_count_one_job(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with spend_app(limits={"credits_per_day": 50}) as app, clients(app) as (capped, _, _):
        headers = {"Idempotency-Key": "race"}
        answers = await asyncio.gather(
            *(capped.post("/v1/jobs", json=JOB, headers=headers) for _ in range(5))
        )
        assert {a.status_code for a in answers} <= {202, 409}
        usage = (await capped.get("/v1/usage")).json()
        assert usage["today"]["jobs"] == 1 and usage["today"]["credits"] == 2.5


async def test_the_cost_is_what_evolink_reserved_for_the_images_it_produced(
    spend_app: SpendAppFactory, clock: Clock, evolink: respx.MockRouter
) -> None:
    # EvoLink's prices moved: it reserves 3 credits an image where our table says 2.5.
    usage = {"billing_rule": "per_call", "credits_reserved": 12.0, "user_group": "default"}
    route = evolink.post(CREATE).mock(
        return_value=httpx.Response(200, json=payloads.created_task(usage=usage))
    )
    async with spend_app(verify_callbacks=False) as app, clients(app) as (capped, _, _):
        job = (await capped.post("/v1/jobs", json={**JOB, "n": 4})).json()
        held = await entry(app, job["id"])
        assert (held.price, held.evolink_reserved, held.state) == (10.0, 12.0, "reserved")

        path, task_id = callback_path(route)
        # Three images of the four asked for: EvoLink settles on the images produced.
        results = [f"https://r/{i}.png" for i in range(3)]
        await callback(app, path, payloads.completed_task(task_id, results=results))
        settled = await entry(app, job["id"])
        assert (settled.state, settled.charged) == (EntryState.SETTLED, 9.0)
        today = (await capped.get("/v1/usage")).json()["today"]
        assert today["by_status"] == {"completed": {"jobs": 1, "credits": 9.0}}
        assert today["credits_reserved"] == 0


async def test_failed_cancelled_and_refused_jobs_cost_nothing(
    spend_app: SpendAppFactory, clock: Clock, evolink: respx.MockRouter
) -> None:
    async with spend_app(verify_callbacks=False) as app, clients(app) as (capped, _, _):
        created = []
        for i in range(2):
            evolink.post(CREATE).mock(
                return_value=httpx.Response(200, json=payloads.created_task(f"{TASK}{i}"))
            )
            created.append((await capped.post("/v1/jobs", json=JOB)).json())
        refusal = payloads.string_error("content_policy_violation", "blocked")
        evolink.post(CREATE).mock(return_value=httpx.Response(400, json=refusal))
        refused = await capped.post("/v1/jobs", json=JOB)
        assert refused.status_code == 422

        for job, body in zip(
            created,
            [
                payloads.failed_task(f"{TASK}0"),
                payloads.failed_task(f"{TASK}1", status="cancelled"),
            ],
            strict=True,
        ):
            await callback(app, await callback_of(app, job["id"]), body)

        today = (await capped.get("/v1/usage")).json()["today"]
        assert today["by_status"] == {
            "cancelled": {"jobs": 1, "credits": 0},
            "failed": {"jobs": 2, "credits": 0},
        }
        assert today["credits"] == 0 and today["jobs"] == 3
        in_flight = next(
            limit
            for limit in (await capped.get("/v1/usage")).json()["limits"]
            if limit["name"] == "jobs_in_flight"
        )
        assert in_flight["used"] == 0


async def callback_of(app: Any, job_id: str) -> str:
    """The callback path of a job, as the service signs it."""
    return httpx.URL(app.state.signer.url_for(uuid.UUID(job_id))).path


async def test_our_own_verdict_keeps_the_price_unless_evolink_never_saw_the_job(
    spend_app: SpendAppFactory, clock: Clock, evolink: respx.MockRouter
) -> None:
    async with spend_app(verify_callbacks=False) as app, clients(app) as (capped, _, _):
        evolink.post(CREATE).mock(return_value=httpx.Response(200, json=payloads.created_task()))
        sent = (await capped.post("/v1/jobs", json=JOB)).json()
        evolink.post(CREATE).mock(return_value=httpx.Response(503))
        queued = (await capped.post("/v1/jobs", json=JOB)).json()
        assert queued["status"] == "queued"

        sessions = app.state.session_factory
        for job in (sent, queued):  # both past JOB_DEADLINE_SECONDS
            await set_job(sessions, job["id"], created_at=ago(3600), next_attempt_at=ago(1))
        worker = build_worker(app.state.settings, sessions, app.state.submitter)
        evolink.get(f"/v1/tasks/{payloads.TASK_ID}").mock(
            return_value=httpx.Response(200, json=payloads.processing_task())
        )
        await worker.tick()
        await worker.drain()
        for job in (sent, queued):
            stored = (await capped.get(f"/v1/jobs/{job['id']}")).json()
            assert stored["error"]["code"] == "deadline_exceeded", stored

        # EvoLink may have run (and billed) the first; the second never reached it.
        assert (await entry(app, sent["id"])).charged == 2.5
        assert (await entry(app, queued["id"])).charged == 0

        # EvoLink's real answer overturns our verdict and settles the job again.
        await callback(
            app, await callback_of(app, sent["id"]), payloads.completed_task(payloads.TASK_ID)
        )
        again = await entry(app, sent["id"])
        assert again.charged == 2.5 and again.state == EntryState.SETTLED
        usage = (await capped.get("/v1/usage")).json()
        day = next(limit for limit in usage["limits"] if limit["name"] == "credits_per_day")
        assert day["used"] == usage["today"]["credits"] == 2.5


async def test_a_job_from_before_the_ledger_ends_without_an_entry(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with (
        spend_app(verify_callbacks=False) as app,
        clients(app) as (capped, _, _),
    ):
        job = (await capped.post("/v1/jobs", json=JOB)).json()
        async with app.state.session_factory() as session:  # as if made before migration 0005
            await session.execute(delete(SpendEntry))
            await session.commit()
        path, task_id = callback_path(evolink_accepts)
        await callback(app, path, payloads.completed_task(task_id))
        assert (await capped.get(f"/v1/jobs/{job['id']}")).json()["status"] == "completed"
        assert (await capped.get("/v1/usage")).json()["today"]["jobs"] == 0


async def test_a_callback_settles_alike_on_the_hot_path_and_through_the_route(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with spend_app(verify_callbacks=False) as app, clients(app) as (capped, _, _):
        if app.state.hot_database is None:
            pytest.skip("the hot paths run on PostgreSQL only")
        jobs = [(await capped.post("/v1/jobs", json={**JOB, "n": 2})).json() for _ in range(4)]
        settled = []
        for call, (job, via) in enumerate(zip(jobs, ["hot", "fastapi"] * 2, strict=True)):
            path, task_id = callback_path(evolink_accepts, call)
            body = (
                payloads.completed_task(task_id, results=["https://r/0.png"])
                if call < 2
                else payloads.failed_task(task_id)
            )
            answered = hot("answered", "callback")
            # A query string (which the route ignores) keeps a request off the hot path.
            params = {"via": via} if via == "fastapi" else None
            async with client_for(app, None) as evolink:
                answer = await evolink.post(path, params=params, json=body)
            assert answer.json() == {"outcome": "applied"}, answer.text
            assert hot("answered", "callback") == answered + (via == "hot")
            row = await entry(app, job["id"])
            settled.append((row.state, row.charged, row.evolink_reserved, row.settled_at))
        # One image of two: half of what EvoLink reserved; a failure costs nothing.
        assert settled[0] == settled[1] == (EntryState.SETTLED, 2.5, 5.0, clock.at)
        assert settled[2] == settled[3] == (EntryState.SETTLED, 0.0, 5.0, clock.at)
        usage = (await capped.get("/v1/usage")).json()
        assert usage["today"]["credits"] == 5.0 and usage["today"]["credits_reserved"] == 0
        in_flight = next(x for x in usage["limits"] if x["name"] == "jobs_in_flight")
        assert in_flight["used"] == 0
