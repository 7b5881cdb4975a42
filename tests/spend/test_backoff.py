"""EvoLink's 402 (out of credits) puts new creates into a back-off shared by every replica:
they are refused at once with 503 evolink_out_of_credits instead of each reaching EvoLink."""

from __future__ import annotations

import httpx
import respx
from asgi_lifespan import LifespanManager

from app.main import create_app
from tests.conftest import client_for
from tests.spend.conftest import CAPPED_KEY, CREATE, Clock, SpendAppFactory, clients
from tests.support import evolink_payloads as payloads

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
