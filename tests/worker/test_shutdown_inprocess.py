"""Worker.stop: stop claiming, let handlers finish within the grace, release every claim."""

from __future__ import annotations

import asyncio

import httpx
import respx
from fastapi import FastAPI

from app.db import utcnow
from app.worker.claims import claim_due
from app.worker.runner import Worker, build_worker
from tests.conftest import make_settings
from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit
from tests.support.rows import Sessions, make_due, run, stored

CREATE = "/v1/images/generations"


class Gate:
    """A fake EvoLink endpoint that holds each request until opened."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer = answer
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.calls = 0  # respx does not record a call that was cancelled

    async def __call__(self, _request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.entered.set()
        await self.opened.wait()
        return self.answer


async def waiting_job(client: httpx.AsyncClient, evolink: respx.MockRouter) -> str:
    evolink.post(CREATE).mock(side_effect=httpx.ConnectError("refused"))
    response = await client.post("/v1/jobs", json={"prompt": "a cat"})
    assert response.json()["status"] == "queued"
    job_id: str = response.json()["id"]
    return job_id


async def test_stop_marks_an_interrupted_send_unknown_and_releases_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    job_id = await waiting_job(client, evolink)
    gate = Gate(httpx.Response(200, json=payloads.created_task()))
    evolink.post(CREATE).mock(side_effect=gate)
    await make_due(session_factory, job_id)
    assert await worker.tick() == 1
    await asyncio.wait_for(gate.entered.wait(), timeout=5)
    assert (await stored(session_factory, job_id)).submit_state == "sending"

    await asyncio.wait_for(worker.stop(grace_seconds=0.05), timeout=5)
    gate.opened.set()
    row = await stored(session_factory, job_id)
    assert (row.status, row.submit_state) == ("queued", "unknown")
    assert (row.claimed_by, row.claim_expires_at) == (None, None)

    # Whoever runs next never sends it again.
    successor = build_worker(
        make_settings(app.state.settings.database_url), session_factory, app.state.submitter
    )
    await make_due(session_factory, job_id)
    await run(successor)
    assert gate.calls == 1
    assert (await stored(session_factory, job_id)).submit_state == "unknown"


async def test_stop_lets_handlers_finish_within_the_grace(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    job_id = await waiting_job(client, evolink)
    gate = Gate(httpx.Response(200, json=payloads.created_task()))
    evolink.post(CREATE).mock(side_effect=gate)
    await make_due(session_factory, job_id)
    await worker.tick()
    await asyncio.wait_for(gate.entered.wait(), timeout=5)
    asyncio.get_running_loop().call_later(0.05, gate.opened.set)
    await asyncio.wait_for(worker.stop(grace_seconds=5), timeout=5)
    row = await stored(session_factory, job_id)
    assert (row.status, row.submit_state, row.claimed_by) == ("pending", "done", None)


async def test_stop_releases_every_claim_it_holds(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    polled, _ = await submit(client, evolink, task_id="task-unified-polled")
    held, _ = await submit(client, evolink, task_id="task-unified-held")
    other, _ = await submit(client, evolink, task_id="task-unified-other")
    gate = Gate(httpx.Response(200, json=payloads.processing_task("task-unified-polled")))
    evolink.get("/v1/tasks/task-unified-polled").mock(side_effect=gate)
    await make_due(session_factory, polled["id"])
    assert await worker.tick() == 1
    await asyncio.wait_for(gate.entered.wait(), timeout=5)
    # Claims taken but not yet acted on, by this worker and by another process.
    for job_id, owner in ((held["id"], worker.owner), (other["id"], "other-host:1:abcdef")):
        await make_due(session_factory, job_id)
        async with session_factory() as session:
            now = utcnow()
            [claimed] = await claim_due(
                session, owner, now, worker.actions.policy.lease_until(now), 1
            )
            await session.commit()
        assert str(claimed.id) == job_id

    await asyncio.wait_for(worker.stop(grace_seconds=0.05), timeout=5)
    gate.opened.set()
    for job_id in (polled["id"], held["id"]):
        row = await stored(session_factory, job_id)
        assert (row.claimed_by, row.claim_expires_at) == (None, None)
    assert (await stored(session_factory, other["id"])).claimed_by == "other-host:1:abcdef"
