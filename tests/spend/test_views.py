"""GET /v1/usage (own; admins any caller's) and GET /v1/credits (admins): 403 for the others;
EvoLink's balance cached for a minute, its low mark logged and shown by /readyz; the metrics."""

from __future__ import annotations

import asyncio

import httpx
import respx
import structlog

from tests.conftest import client_for
from tests.spend.conftest import Clock, SpendAppFactory, callback, callback_path, clients
from tests.support import evolink_payloads as payloads

JOB = {"prompt": "a kestrel"}
CREDITS = {
    "success": True,
    "message": "",
    "data": {
        "token": {
            "remaining_credits": 99416.44,
            "used_credits": 583.56,
            "unlimited_credits": False,
        },
        "user": {"remaining_credits": 1095.40, "used_credits": 135.90},
    },
}


async def test_only_admins_see_other_callers_and_the_credits(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with (
        spend_app(limits={"credits_per_day": 100}) as app,
        clients(app) as (capped, other, ops),
    ):
        assert (await capped.post("/v1/jobs", json=JOB)).status_code == 202

        for refused in (
            await other.get("/v1/usage", params={"caller": "capped"}),
            await other.get("/v1/credits"),
            await capped.get("/v1/credits"),
        ):
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "admin_only"
        own = await capped.get("/v1/usage", params={"caller": "capped"})
        assert own.status_code == 200 and own.json() == (await capped.get("/v1/usage")).json()
        assert (await other.get("/v1/usage")).json()["today"]["jobs"] == 0

        seen = await ops.get("/v1/usage", params={"caller": "capped"})
        assert seen.status_code == 200
        assert seen.json()["caller"] == "capped" and seen.json()["today"]["credits"] == 2.5
        day = next(limit for limit in seen.json()["limits"] if limit["name"] == "credits_per_day")
        assert (day["value"], day["used"], day["remaining"]) == (100, 2.5, 97.5)
        missing = await ops.get("/v1/usage", params={"caller": "nobody"})
        assert missing.status_code == 404 and missing.json()["code"] == "caller_not_found"
        async with client_for(app, None) as anonymous:
            assert (await anonymous.get("/v1/usage")).status_code == 401


async def test_credits_show_evolink_s_balance_cached_for_a_minute_beside_today_s_spend(
    spend_app: SpendAppFactory,
    clock: Clock,
    evolink: respx.MockRouter,
    evolink_accepts: respx.Route,
) -> None:
    balance = evolink.get("/v1/credits").mock(return_value=httpx.Response(200, json=CREDITS))
    async with spend_app(verify_callbacks=False) as app, clients(app) as (capped, other, ops):
        await capped.post("/v1/jobs", json={**JOB, "n": 2})
        await other.post("/v1/jobs", json=JOB)
        path, task_id = callback_path(evolink_accepts, 1)
        await callback(app, path, payloads.failed_task(task_id))

        now = [1000.0]
        app.state.balance.clock = lambda: now[0]
        answer = await ops.get("/v1/credits")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        # The account's 1095.40 is less than the key's allowance: that is what can be spent.
        assert body["evolink"]["remaining_credits"] == 1095.40
        assert body["evolink"]["token"]["remaining_credits"] == 99416.44
        assert body["evolink_error"] is None
        assert body["today"]["credits"] == 5 and body["today"]["jobs"] == 2
        assert body["today_by_caller"] == {"capped": 5, "other": 0}
        assert balance.calls.last.request.headers["Authorization"] == "Bearer sk-evo-test-key"

        now[0] += 59
        assert (await ops.get("/v1/credits")).status_code == 200
        assert balance.call_count == 1, "EvoLink's balance is read at most once a minute"
        now[0] += 2
        await ops.get("/v1/credits")
        assert balance.call_count == 2

        metrics = (await ops.get("/metrics")).text
        assert "evolink_jobs_evolink_credits_remaining 1095.4" in metrics


async def test_an_unreadable_balance_still_shows_the_ledger(
    spend_app: SpendAppFactory, clock: Clock, evolink: respx.MockRouter
) -> None:
    evolink.get("/v1/credits").mock(return_value=httpx.Response(500))
    async with spend_app() as app, clients(app) as (_, _, ops):
        answer = await ops.get("/v1/credits")
        assert answer.status_code == 200
        assert answer.json()["evolink"] is None
        assert "500" in answer.json()["evolink_error"]


async def test_a_balance_below_the_mark_is_logged_and_shown_by_readyz_without_failing_it(
    spend_app: SpendAppFactory, clock: Clock, evolink: respx.MockRouter
) -> None:
    evolink.get("/v1/credits").mock(return_value=httpx.Response(200, json=CREDITS))
    with structlog.testing.capture_logs() as logs:
        async with spend_app(credits_warn_below=2000) as app, clients(app) as (_, _, ops):
            for _ in range(500):  # the watch reads the balance as the app starts
                if app.state.balance.last is not None:
                    break
                await asyncio.sleep(0.01)
            ready = await ops.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["status"] == "ok"
            assert ready.json()["detail"] == {
                "evolink_credits_low": {"remaining_credits": 1095.4, "warn_below": 2000}
            }
            assert (await ops.get("/v1/credits")).json()["low"] is True
    low = [entry for entry in logs if entry["event"] == "evolink_credits_low"]
    assert low and low[0]["log_level"] == "warning" and low[0]["remaining_credits"] == 1095.4


async def test_a_balance_above_the_mark_adds_no_detail(
    spend_app: SpendAppFactory, clock: Clock, evolink: respx.MockRouter
) -> None:
    evolink.get("/v1/credits").mock(return_value=httpx.Response(200, json=CREDITS))
    async with spend_app(credits_warn_below=1000) as app, clients(app) as (_, _, ops):
        await ops.get("/v1/credits")
        assert (await ops.get("/readyz")).json() == {"status": "ok"}


async def test_metrics_count_refusals_by_caller_and_limit_and_credits_spent_by_caller(
    spend_app: SpendAppFactory, clock: Clock, evolink_accepts: respx.Route
) -> None:
    async with (
        spend_app(limits={"jobs_per_minute": 1}, verify_callbacks=False) as app,
        clients(app) as (capped, _, ops),
    ):

        def sample(text: str, name: str) -> float:
            for line in text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
            return 0.0

        refusals = 'evolink_jobs_quota_refusals_total{caller="capped",limit="jobs_per_minute"}'
        spent = 'evolink_jobs_credits_spent_total{caller="capped"}'
        before = (await ops.get("/metrics")).text
        await capped.post("/v1/jobs", json={**JOB, "n": 2})
        await capped.post("/v1/jobs", json=JOB)
        path, task_id = callback_path(evolink_accepts)
        await callback(
            app,
            path,
            payloads.completed_task(task_id, results=["https://r/0.png", "https://r/1.png"]),
        )
        after = (await ops.get("/metrics")).text
        assert sample(after, refusals) - sample(before, refusals) == 1
        assert sample(after, spent) - sample(before, spent) == 5
