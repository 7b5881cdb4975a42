"""EvoLink's 402 (out of credits) puts new creates into a back-off shared by every replica:
they are refused at once with 503 evolink_out_of_credits instead of each reaching EvoLink."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta

import httpx
import respx
from asgi_lifespan import LifespanManager

from app.jobs.models import Job
from app.main import create_app
from app.worker.runner import build_worker
from tests.conftest import client_for
from tests.spend.conftest import CAPPED_KEY, CREATE, Clock, SpendAppFactory, clients
from tests.support import evolink_payloads as payloads
from tests.support.rows import ago, set_job

JOB = {"prompt": "a harbour at night"}
OUT_OF_CREDITS = {
    "error": {
        "code": "insufficient_quota",
        "message": "Insufficient quota. Please top up your account.",
        "type": "insufficient_quota",
    }
}


async def test_a_402_refuses_new_creates_fast_until_the_back_off_ends(
    spend_app: SpendAppFactory, clock: Clock, evolink: respx.MockRouter
) -> None:
    create = evolink.post(CREATE).mock(return_value=httpx.Response(402, json=OUT_OF_CREDITS))
    async with (
        spend_app(out_of_credits_backoff_seconds=30) as app,
        clients(app) as (capped, other, _),
    ):
        first = await capped.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 503 and first.json()["code"] == "gateway_out_of_credits"

        clock.advance(seconds=10)
        for client in (capped, other):
            refused = await client.post("/v1/jobs", json=JOB)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "evolink_out_of_credits"
            assert refused.headers["Retry-After"] == "20"
        assert create.call_count == 1, "creates in the back-off must not reach EvoLink"
        jobs = (await capped.get("/v1/jobs")).json()["data"]
        assert [job["id"] for job in jobs] == [first.json()["job_id"]], "no job row is left"

        # A replay of the first request still replays its answer.
        replay = await capped.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "k1"})
        assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"

        # Another replica on the same database refuses too: the back-off lives in the database.
        replica = create_app(app.state.settings, run_worker=False)
        async with LifespanManager(replica), client_for(replica, CAPPED_KEY) as elsewhere:
            assert (await elsewhere.post("/v1/jobs", json=JOB)).status_code == 503
        assert create.call_count == 1

        clock.advance(seconds=20)
        evolink.post(CREATE).mock(return_value=httpx.Response(200, json=payloads.created_task()))
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202


async def test_other_refusals_start_no_back_off(
    spend_app: SpendAppFactory, clock: Clock, evolink: respx.MockRouter
) -> None:
    refusal = payloads.string_error("content_policy_violation", "blocked")
    create = evolink.post(CREATE).mock(return_value=httpx.Response(400, json=refusal))
    async with spend_app() as app, clients(app) as (capped, _, _):
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 422
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 422
        assert create.call_count == 2


async def test_a_queued_job_waits_out_the_back_off_instead_of_failing(
    spend_app: SpendAppFactory, clock: Clock, evolink: respx.MockRouter
) -> None:
    """A job accepted before the 402 is not sent during the back-off (where EvoLink would
    refuse it too, and it would fail): it is sent when the back-off ends."""
    async with spend_app(out_of_credits_backoff_seconds=30) as app, clients(app) as (capped, *_):
        evolink.post(CREATE).mock(return_value=httpx.Response(503))
        queued = (await capped.post("/v1/jobs", json=JOB)).json()
        assert queued["status"] == "queued"
        create = evolink.post(CREATE).mock(return_value=httpx.Response(402, json=OUT_OF_CREDITS))
        refused = await capped.post("/v1/jobs", json=JOB)
        assert refused.json()["code"] == "gateway_out_of_credits"
        assert create.call_count == 2  # one route: the 503, then the 402

        sessions = app.state.session_factory
        worker = build_worker(app.state.settings, sessions, app.state.submitter)
        clock.advance(seconds=10)
        await set_job(sessions, queued["id"], next_attempt_at=ago(1))
        await worker.tick()
        await worker.drain()
        assert create.call_count == 2, "a queued job must not reach EvoLink in the back-off"
        held = (await capped.get(f"/v1/jobs/{queued['id']}")).json()
        assert held["status"] == "queued" and held["error"] is None, held
        async with sessions() as session:
            job = await session.get(Job, uuid.UUID(queued["id"]))
            assert job is not None and job.next_attempt_at is not None
            assert job.next_attempt_at.replace(tzinfo=UTC) == clock() + timedelta(seconds=20)

        clock.advance(seconds=20)
        create.mock(return_value=httpx.Response(200, json=payloads.created_task()))
        await set_job(sessions, queued["id"], next_attempt_at=ago(1))
        await worker.tick()
        await worker.drain()
        assert create.call_count == 3
        sent = (await capped.get(f"/v1/jobs/{queued['id']}")).json()
        assert sent["status"] == "pending" and sent["error"] is None, sent
