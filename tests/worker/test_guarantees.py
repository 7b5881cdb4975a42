"""Guarantees of background work that hand-made mutations of the code showed unpinned."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import respx

from app.jobs.state_machine import unbind_unconfirmed_task
from app.worker.runner import Worker
from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit
from tests.support.rows import Sessions, ago, make_due, run, set_job, stored
from tests.worker.test_polling import _fail_by_deadline, task_answers
from tests.worker.test_shutdown_inprocess import Gate, waiting_job

CREATE = "/v1/images/generations"
NOT_FOUND = httpx.Response(404, json=payloads.string_error("task_not_found", "no such task"))


async def test_a_404_after_our_deadline_verdict_keeps_deadline_exceeded(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    path = await _fail_by_deadline(client, evolink, worker, session_factory)
    job_id = path.split("/")[-2]
    poll = task_answers(evolink, NOT_FOUND)
    # A (perhaps forged) late callback makes us ask EvoLink, which no longer knows the task.
    assert (await anonymous.post(path, json=payloads.completed_task())).json() == {
        "outcome": "deferred"
    }
    await run(worker)
    assert poll.call_count == 1
    row = await stored(session_factory, job_id)
    assert (row.status, row.error_code) == ("failed", "deadline_exceeded")
    assert row.next_attempt_at is None


async def test_a_late_503_answer_does_not_reset_an_unknown_submission(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    job_id = await waiting_job(client, evolink)
    gate = Gate(httpx.Response(503, json=payloads.integer_error(503, "down", "unavailable")))
    evolink.post(CREATE).mock(side_effect=gate)
    await make_due(session_factory, job_id)
    assert await worker.tick() == 1
    await asyncio.wait_for(gate.entered.wait(), timeout=5)
    # Meanwhile the send was declared unknown (its claim lapsed, or its process stopped).
    await set_job(session_factory, job_id, submit_state="unknown")
    gate.opened.set()
    await worker.drain()
    row = await stored(session_factory, job_id)
    assert (row.status, row.submit_state) == ("queued", "unknown")


async def test_a_submit_with_a_stale_snapshot_sends_nothing(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    job_id = await waiting_job(client, evolink)
    # This worker claimed the job while it was waiting; since then its send became unknown.
    await set_job(session_factory, job_id, claimed_by=worker.owner)
    snapshot = await stored(session_factory, job_id)
    assert snapshot.submit_state == "waiting"
    await set_job(session_factory, job_id, submit_state="unknown")
    create = evolink.post(CREATE).mock(
        return_value=httpx.Response(200, json=payloads.created_task())
    )
    create.reset()
    await worker.actions.submit(snapshot)
    assert create.call_count == 0
    assert (await stored(session_factory, job_id)).submit_state == "unknown"


async def test_unbinding_a_forged_task_id_leaves_an_accepted_job_alone(
    client: httpx.AsyncClient, evolink: respx.MockRouter, session_factory: Sessions
) -> None:
    job, _ = await submit(client, evolink)
    async with session_factory() as session:
        unbound = await unbind_unconfirmed_task(
            session, uuid.UUID(job["id"]), payloads.TASK_ID, "EvoLink does not know it"
        )
        await session.commit()
    assert not unbound
    row = await stored(session_factory, job["id"])
    assert (row.status, row.evolink_task_id) == ("pending", payloads.TASK_ID)


@pytest.mark.parametrize("settings", [{"worker_batch_size": 2}], indirect=True)
async def test_a_tick_claims_at_most_its_free_capacity(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    jobs = []
    for n in range(3):
        job, _ = await submit(client, evolink, task_id=f"task-unified-capacity-{n}")
        jobs.append(job["id"])
    gate = Gate(httpx.Response(200, json=payloads.processing_task()))
    evolink.get(url__regex=r"/v1/tasks/task-unified-capacity-\d").mock(side_effect=gate)
    for job_id in jobs:
        await set_job(session_factory, job_id, next_attempt_at=ago(1))

    assert await worker.tick() == 2
    await asyncio.wait_for(gate.entered.wait(), timeout=5)
    assert await worker.tick() == 0, "both handlers are still running: no capacity is free"
    gate.opened.set()
    await worker.drain()
    assert await run(worker) == 1
