"""Spend control through real processes: usage figures that match the ledger and EvoLink's own
account after a mix of outcomes, `evolink-jobs usage`, and limits that hold across replicas."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.e2e.conftest import e2e_database, wait_until
from tests.support import databases, processes

RENDER_KEY = "e2e-render-key-0123"
OPS_KEY = "e2e-ops-key-0123456"
PRICE = 2.5  # the simulator reserves, and charges, 2.5 credits per image (as EvoLink does)


def callers_file(tmp: Path, limits: str = "") -> Path:
    path = tmp / "callers.toml"
    path.write_text(
        f'[callers.render]\napi_key = "{RENDER_KEY}"\n[callers.render.limits]\n{limits}\n'
        f'[callers.ops]\napi_key = "{OPS_KEY}"\nadmin = true\n'
    )
    return path


@dataclass(frozen=True)
class SpendStack:
    api_url: str
    simulator_url: str
    database_url: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def spend_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SpendStack]:
    """A simulator and a service whose callers file sets limits, on each database."""
    tmp = tmp_path_factory.mktemp(f"spend-{request.param}")
    if request.param == "sqlite":
        database_url = e2e_database("sqlite", tmp)
    else:
        base = os.environ.get("TEST_DATABASE_URL")
        if not base:
            pytest.skip("TEST_DATABASE_URL is not set")
        database_url = base + "_e2e_spend"
        databases.reset_postgres(database_url)
    sim_port, api_port = processes.free_port(), processes.free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    env = processes.service_env(
        database_url,
        simulator_url,
        api_port,
        API_KEYS="",
        CALLERS_FILE=str(callers_file(tmp, "credits_per_day = 1000")),
    )
    processes.migrate(env)
    sim = processes.simulator(tmp, sim_port).start()
    service = processes.service(tmp, env, api_port)
    try:
        service.start()
        yield SpendStack(f"http://127.0.0.1:{api_port}", simulator_url, database_url)
    finally:
        service.terminate()
        sim.terminate()


@pytest.fixture
async def render(spend_stack: SpendStack) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {RENDER_KEY}"}
    async with httpx.AsyncClient(base_url=spend_stack.api_url, headers=headers, timeout=20) as c:
        yield c


async def ledger(database_url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT j.status, e.price, e.evolink_reserved, e.charged, e.state "
                    "FROM spend_entries e JOIN jobs j ON j.id = e.job_id"
                )
            )
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


async def test_usage_matches_the_ledger_and_evolink_after_completed_failed_and_cancelled_jobs(
    spend_stack: SpendStack, render: httpx.AsyncClient, tmp_path: Path
) -> None:
    prompts = [
        ("a lighthouse", 1),
        ("two lighthouses", 2),
        ("a fox [sim outcome=failed code=content_policy_violation]", 4),
        ("a heron [sim outcome=cancelled]", 2),
        ("a kestrel [sim outcome=failed code=generation_timeout]", 1),
    ]
    jobs = []
    for prompt, n in prompts:
        answer = await render.post("/v1/jobs", json={"prompt": prompt, "n": n})
        assert answer.status_code == 202, answer.text
        jobs.append(answer.json())
    refused = await render.post("/v1/jobs", json={"prompt": "refused [sim create=400]"})
    assert refused.status_code == 422
    done = [await wait_until(render, job["id"], within=90) for job in jobs]
    assert [job["status"] for job in done] == [
        "completed",
        "completed",
        "failed",
        "cancelled",
        "failed",
    ]

    usage = (await render.get("/v1/usage")).json()
    rows = await ledger(spend_stack.database_url)
    assert len(rows) == 6 and {row["state"] for row in rows} == {"settled"}
    expected: dict[str, dict[str, float]] = {}
    for row in rows:
        seen = expected.setdefault(row["status"], {"jobs": 0, "credits": 0.0})
        seen["jobs"] += 1
        seen["credits"] += row["charged"]
    assert usage["today"]["by_status"] == expected
    assert expected == {
        "cancelled": {"jobs": 1, "credits": 0},
        "completed": {"jobs": 2, "credits": 3 * PRICE},
        "failed": {"jobs": 3, "credits": 0},
    }
    assert usage["today"]["credits"] == usage["month"]["credits"] == 3 * PRICE
    assert usage["today"]["jobs"] == 6 and usage["today"]["credits_reserved"] == 0
    day = next(limit for limit in usage["limits"] if limit["name"] == "credits_per_day")
    assert (day["used"], day["remaining"]) == (3 * PRICE, 1000 - 3 * PRICE)
    in_flight = next(limit for limit in usage["limits"] if limit["name"] == "jobs_in_flight")
    assert in_flight["used"] == 0
    reserved = {row["evolink_reserved"] for row in rows if row["status"] == "completed"}
    assert reserved == {PRICE, 2 * PRICE}, "EvoLink's own reservation is recorded"

    # EvoLink's account agrees: it charged exactly what the ledger says was spent.
    evolink_key = {"Authorization": "Bearer sk-evo-e2e"}
    async with httpx.AsyncClient(base_url=spend_stack.simulator_url, headers=evolink_key) as sim:
        account = (await sim.get("/v1/credits")).json()["data"]["user"]
    assert account["used_credits"] == usage["today"]["credits"]
    headers = {"Authorization": f"Bearer {OPS_KEY}"}
    async with httpx.AsyncClient(base_url=spend_stack.api_url, headers=headers) as ops:
        credits = (await ops.get("/v1/credits")).json()
        assert credits["evolink"]["remaining_credits"] == account["remaining_credits"]
        assert credits["today_by_caller"] == {"render": 3 * PRICE}
        seen = (await ops.get("/v1/usage", params={"caller": "render"})).json()
        assert _settled(seen) == _settled(usage)

    # The operator's console prints the same figures.
    env = {
        **{k: v for k, v in os.environ.items() if k in processes.BASE_ENV_KEYS},
        "EVOLINK_JOBS_URL": spend_stack.api_url,
        "EVOLINK_JOBS_API_KEY": OPS_KEY,
    }
    printed = console(env, "usage", "--caller", "render", "--json")
    assert printed.returncode == 0, printed.stderr
    assert _settled(json.loads(printed.stdout)) == _settled(usage)
    table = console({**env, "COLUMNS": "160"}, "usage", "--caller", "render")
    assert table.returncode == 0, table.stderr
    assert "Usage of render" in table.stdout and "credits_per_day" in table.stdout
    assert "completed" in table.stdout and "992.5" in table.stdout
    denied = console({**env, "EVOLINK_JOBS_API_KEY": RENDER_KEY}, "usage", "--caller", "ops")
    assert denied.returncode == 1 and "403 admin_only" in denied.stderr


def _settled(usage: dict[str, Any]) -> dict[str, Any]:
    """`usage` without the rolling minute's limit: two reads a moment apart may straddle a
    minute boundary (the jobs made earlier then leave the window), while every settled figure
    must agree."""
    limits = [limit for limit in usage["limits"] if limit["name"] != "jobs_per_minute"]
    assert len(limits) == len(usage["limits"]) - 1
    return {**usage, "limits": limits}


def console(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`evolink-jobs ARGS` as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def create_until_answered(api: httpx.AsyncClient, key: str) -> httpx.Response:
    """One create, as a well-behaved caller sends it: with an Idempotency-Key, sent again after
    a 503 (two cores running three replicas may run out of pooled connections) or while a 409
    says the first attempt is still being answered. A replay never counts twice."""
    body, headers = {"prompt": f"burst {key}"}, {"Idempotency-Key": key}
    for _ in range(60):
        answer = await api.post("/v1/jobs", json=body, headers=headers)
        if answer.status_code not in (409, 503):
            return answer
        await asyncio.sleep(min(2.0, float(answer.headers.get("Retry-After", "1"))))
    raise AssertionError(f"{key} never answered: {answer.text}")


pg_only = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="replicas need PostgreSQL (TEST_DATABASE_URL)"
)


@pytest.fixture
def replicas_database() -> str:
    """A migrated PostgreSQL database of our own, beside the suite's."""
    base = os.environ["TEST_DATABASE_URL"]
    name = f"{make_url(base).database}_spend_replicas"
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    databases.reset_postgres(url)
    databases.migrate(url)
    return url


@pg_only
async def test_three_replicas_accept_exactly_the_budget_of_a_burst(
    tmp_path: Path, replicas_database: str
) -> None:
    url = replicas_database
    sim_port = processes.free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    # A budget of exactly 50 one-image jobs a day.
    file = callers_file(tmp_path, f"credits_per_day = {50 * PRICE}")
    members = [processes.simulator(tmp_path, sim_port, task_seconds=60).start()]
    try:
        urls = []
        for _ in range(3):
            port = processes.free_port()
            env = processes.service_env(
                url, simulator_url, port, API_KEYS="", CALLERS_FILE=str(file)
            )
            members.append(processes.service(tmp_path, env, port).start())
            urls.append(f"http://127.0.0.1:{port}")

        headers = {"Authorization": f"Bearer {RENDER_KEY}"}
        limits = httpx.Limits(max_connections=200)
        apis = [
            httpx.AsyncClient(base_url=u, headers=headers, timeout=60, limits=limits) for u in urls
        ]
        try:
            answers = await asyncio.gather(
                *(create_until_answered(apis[i % 3], f"burst-{i}") for i in range(200))
            )
        finally:
            await asyncio.gather(*(api.aclose() for api in apis))
        statuses = [answer.status_code for answer in answers]
        assert sorted(set(statuses)) == [202, 429], [
            a.text for a in answers if a.status_code >= 500
        ]
        assert statuses.count(202) == 50
        refusal = next(a for a in answers if a.status_code == 429).json()
        assert (refusal["limit"], refusal["value"]) == ("credits_per_day", 50 * PRICE)

        # Jobs that found no free submission slot were queued: let background work send them.
        async with httpx.AsyncClient(base_url=urls[0], headers=headers, timeout=20) as api:
            accepted = [a.json()["id"] for a in answers if a.status_code == 202]
            for job_id in accepted:
                await wait_until(api, job_id, {"pending", "processing", "completed"}, within=60)
        async with httpx.AsyncClient(base_url=simulator_url) as sim:
            sent = (await sim.get("/_sim/requests")).json()["requests"]
        sent_for = sorted(r["body"]["callback_url"].split("/")[-2] for r in sent)
        assert sent_for == sorted(accepted), "only the accepted jobs reach EvoLink, once each"
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                jobs = await connection.scalar(text("SELECT count(*) FROM jobs"))
                used = await connection.scalar(
                    text("SELECT day_credits FROM spend_counters WHERE scope = 'caller:render'")
                )
        finally:
            await engine.dispose()
        assert (jobs, used) == (50, 50 * PRICE)
    finally:
        for member in reversed(members):
            if member.popen is not None and member.popen.poll() is None:
                member.terminate()
