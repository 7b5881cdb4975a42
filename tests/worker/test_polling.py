"""The reconciler: jobs whose callback is overdue are polled, and given up only by clear rules."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from app.db import utcnow
from app.metrics import REGISTRY
from app.spend.models import SpendEntry
from app.worker.runner import Worker, build_worker
from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit
from tests.support.rows import (
    Sessions,
    ago,
    history,
    make_due,
    run,
    seconds_until,
    set_job,
    stored,
)

TASK = f"/v1/tasks/{payloads.TASK_ID}"
CREATE = "/v1/images/generations"


def task_answers(evolink: respx.MockRouter, *answers: Any) -> respx.Route:
    """EvoLink's GET /v1/tasks/{id} answers these, one per call (the last one repeats)."""
    queue = list(answers)

    def answer(_request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return httpx.Response(200, json=item)

    route = evolink.get(TASK).mock(side_effect=answer)
    route.reset()  # the same route as any earlier fake of this task: count from here
    return route


async def accepted_job(
    client: httpx.AsyncClient, evolink: respx.MockRouter, task_info: dict[str, Any]
) -> str:
    evolink.post(CREATE).mock(
        return_value=httpx.Response(200, json=payloads.created_task(task_info=task_info))
    )
    response = await client.post("/v1/jobs", json={"prompt": "a cat"})
    assert response.status_code == 202
    job_id: str = response.json()["id"]
    return job_id


@pytest.mark.parametrize(
    ("task_info", "expected_wait"),
    [({"can_cancel": True, "estimated_time": 40}, 40 + 30), ({"can_cancel": True}, 100 + 30)],
    ids=["evolink-estimate", "default-estimate"],
)
async def test_first_poll_comes_when_the_estimate_plus_grace_passes(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
    task_info: dict[str, Any],
    expected_wait: float,
) -> None:
    job_id = await accepted_job(client, evolink, task_info)
    poll = task_answers(evolink, payloads.completed_task())
    job = await stored(session_factory, job_id)
    assert job.submitted_at is not None and job.next_attempt_at is not None
    waited = (job.next_attempt_at - job.submitted_at).total_seconds()
    assert waited == pytest.approx(expected_wait, abs=1)

    assert await run(worker) == 0
    assert not poll.called

    await set_job(session_factory, job_id, next_attempt_at=job.next_attempt_at - timedelta(days=1))
    assert await run(worker) == 1
    assert poll.call_count == 1
    done = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert (done["status"], done["results"]) == ("completed", [payloads.RESULT_URL])
    assert await history(client, job_id) == [("submit", "applied"), ("poll", "applied")]
    row = await stored(session_factory, job_id)
    assert (row.final_source, row.next_attempt_at, row.claimed_by) == ("poll", None, None)


@pytest.mark.parametrize("settings", [{"reconcile_grace_seconds": 0.3}], indirect=True)
async def test_first_poll_in_real_time_with_a_short_grace(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker
) -> None:
    job_id = await accepted_job(client, evolink, {"estimated_time": 0})
    poll = task_answers(evolink, payloads.processing_task(progress=55))
    assert await run(worker) == 0
    assert not poll.called
    await asyncio.sleep(0.35)
    assert await run(worker) == 1
    assert poll.call_count == 1
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert (job["status"], job["progress"]) == ("processing", 55)
    assert (await history(client, job_id))[-1] == ("poll", "applied")


async def test_backoff_between_polls_grows_to_its_ceiling(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    job, _ = await submit(client, evolink)
    poll = task_answers(evolink, payloads.processing_task(progress=10))
    waits = []
    for _ in range(6):
        await make_due(session_factory, job["id"])
        assert await run(worker) == 1
        waits.append(seconds_until((await stored(session_factory, job["id"])).next_attempt_at))
    # 5 s doubling, jittered down by at most 20%, capped at 60 s.
    for wait, ceiling in zip(waits, [5, 10, 20, 40, 60, 60], strict=True):
        assert 0.8 * ceiling - 0.5 <= wait <= ceiling
    assert waits[0] < waits[1] < waits[2] < waits[3]
    row = await stored(session_factory, job["id"])
    assert (row.poll_attempts, row.status, row.progress) == (6, "processing", 10)
    assert poll.call_count == 6


async def test_task_evolink_no_longer_knows_fails_the_job(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    job, _ = await submit(client, evolink)
    poll = task_answers(
        evolink, httpx.Response(404, json=payloads.string_error("task_not_found", "no such task"))
    )
    await make_due(session_factory, job["id"])
    await run(worker)
    failed = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "task_not_found"
    assert failed["completed_at"] is not None
    assert (await history(client, job["id"]))[-1] == ("local", "applied")
    assert (await stored(session_factory, job["id"])).next_attempt_at is None
    await run(worker)
    assert poll.call_count == 1


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (payloads.processing_task(progress=80), "failed", "deadline_exceeded"),
        (httpx.Response(500), "failed", "deadline_exceeded"),
        (payloads.completed_task(), "completed", None),
    ],
    ids=["still-processing", "evolink-error", "finished-at-the-last-look"],
)
async def test_job_past_its_deadline_gets_one_last_look_then_fails(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
    answer: Any,
    status: str,
    code: str | None,
) -> None:
    job, _ = await submit(client, evolink)
    poll = task_answers(evolink, answer)
    await set_job(session_factory, job["id"], created_at=ago(1801), next_attempt_at=ago(1))
    await run(worker)
    assert poll.call_count == 1
    final = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert final["status"] == status
    assert (final["error"] or {}).get("code") == code
    assert (await stored(session_factory, job["id"])).next_attempt_at is None


async def test_polls_are_never_scheduled_past_the_deadline(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    job, _ = await submit(client, evolink)
    task_answers(evolink, payloads.processing_task())
    # 2 s before the deadline: the next poll (5 s of backoff) would come after it.
    await set_job(session_factory, job["id"], created_at=ago(1798), next_attempt_at=ago(1))
    await run(worker)
    row = await stored(session_factory, job["id"])
    assert row.status == "processing"
    assert seconds_until(row.next_attempt_at) <= 2.1


async def _fail_by_deadline(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, sessions: Sessions
) -> str:
    job, path = await submit(client, evolink)
    evolink.get(TASK).mock(return_value=httpx.Response(200, json=payloads.processing_task()))
    await set_job(sessions, job["id"], created_at=ago(1801), next_attempt_at=ago(1))
    await run(worker)
    failed = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert failed["error"]["code"] == "deadline_exceeded"
    return path


async def test_real_result_arriving_after_our_deadline_verdict_wins(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    path = await _fail_by_deadline(client, evolink, worker, session_factory)
    job_id = path.split("/")[-2]
    poll = task_answers(evolink, payloads.completed_task())
    response = await anonymous.post(path, json=payloads.completed_task())
    assert response.json() == {"outcome": "deferred"}
    await run(worker)
    assert poll.call_count == 1
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert (job["status"], job["error"], job["results"]) == (
        "completed",
        None,
        [payloads.RESULT_URL],
    )
    assert (await history(client, job_id))[-3:] == [
        ("local", "applied"),
        ("callback", "deferred"),
        ("poll", "applied"),
    ]
    assert (await stored(session_factory, job_id)).next_attempt_at is None


async def test_late_result_survives_evolink_trouble_while_confirming_it(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    path = await _fail_by_deadline(client, evolink, worker, session_factory)
    job_id = path.split("/")[-2]
    poll = task_answers(evolink, httpx.Response(502), payloads.completed_task())
    assert (await anonymous.post(path, json=payloads.completed_task())).status_code == 200
    await run(worker)
    assert poll.call_count == 1
    row = await stored(session_factory, job_id)
    assert row.status == "failed"
    assert 0 < seconds_until(row.next_attempt_at) <= 60
    await make_due(session_factory, job_id)
    await run(worker)
    assert poll.call_count == 2
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "completed"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, json=payloads.string_error("internal_error", "boom")),
        httpx.Response(502, content=b"<html>Bad gateway</html>"),
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(200, json={"no": "id"}),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
    ],
    ids=["500", "502", "503", "429", "not-a-task", "timeout", "connect"],
)
async def test_evolink_trouble_during_a_poll_reschedules_it(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
    answer: Any,
) -> None:
    job, _ = await submit(client, evolink)
    poll = task_answers(evolink, answer, payloads.completed_task())
    await make_due(session_factory, job["id"])
    await run(worker)
    row = await stored(session_factory, job["id"])
    assert (row.status, row.error_code, row.poll_attempts) == ("pending", None, 1)
    assert 3.5 <= seconds_until(row.next_attempt_at) <= 5
    await make_due(session_factory, job["id"])
    await run(worker)
    assert poll.call_count == 2
    assert (await stored(session_factory, job["id"])).status == "completed"


async def test_jobs_left_claimed_by_a_dead_process_are_taken_over(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    job, _ = await submit(client, evolink)
    poll = task_answers(evolink, payloads.completed_task())
    lapsed = utcnow() + timedelta(seconds=30)
    await set_job(
        session_factory,
        job["id"],
        next_attempt_at=ago(5),
        claimed_by="crashed-host:4242:abcdef",
        claim_expires_at=lapsed,
    )
    assert await run(worker) == 0, "a live claim must be respected"
    await set_job(session_factory, job["id"], claim_expires_at=ago(1))
    assert await run(worker) == 1
    assert poll.call_count == 1
    row = await stored(session_factory, job["id"])
    assert (row.status, row.claimed_by, row.claim_expires_at) == ("completed", None, None)


async def test_sending_job_whose_claim_lapsed_becomes_unknown_and_is_never_resent(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    create = evolink.post(CREATE).mock(side_effect=httpx.ConnectError("refused"))
    response = await client.post("/v1/jobs", json={"prompt": "a cat"})
    assert response.json()["status"] == "queued"
    job_id = response.json()["id"]
    # A process took the job, started sending it, and died.
    await set_job(
        session_factory,
        job_id,
        submit_state="sending",
        submit_attempts=2,
        submitted_at=ago(61),
        claimed_by="crashed-host:4242:abcdef",
        claim_expires_at=ago(1),
        next_attempt_at=ago(1),
    )
    create.mock(return_value=httpx.Response(200, json=payloads.created_task()))
    assert await run(worker) == 1
    row = await stored(session_factory, job_id)
    assert (row.status, row.submit_state, row.claimed_by) == ("queued", "unknown", None)
    # It waits for a callback until the unknown-submission deadline, counted from the send.
    assert seconds_until(row.next_attempt_at) == pytest.approx(600 - 61, abs=2)
    await make_due(session_factory, job_id)
    await run(worker)
    assert create.call_count == 1
    assert (await stored(session_factory, job_id)).submit_state == "unknown"


@pytest.mark.parametrize(
    "final", [payloads.completed_task, payloads.failed_task], ids=["completed", "failed"]
)
async def test_a_final_poll_answer_is_applied_alike_over_the_hot_pool_and_the_session(
    app: FastAPI,
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: Sessions,
    final: Callable[[str], dict[str, Any]],
) -> None:
    """On PostgreSQL the worker applies EvoLink's final answer with the hot paths' prepared
    statements (app/hot/applying.py); without them, through the session. Same rows either way."""
    if app.state.hot_database is None:
        pytest.skip("the hot paths run on PostgreSQL only")
    settings, submitter = app.state.settings, app.state.submitter
    ends = {}
    for via, hot in (("hot", app.state.hot_database), ("session", None)):
        task_id = f"task-unified-1757156493-{via}"
        created = payloads.created_task(task_id, task_info={"estimated_time": 40})
        evolink.post(CREATE).mock(return_value=httpx.Response(200, json=created))
        job_id = (await client.post("/v1/jobs", json={"prompt": "a cat"})).json()["id"]
        evolink.get(f"/v1/tasks/{task_id}").mock(
            return_value=httpx.Response(200, json=final(task_id))
        )
        await make_due(session_factory, job_id)
        answered = _hot_polls("answered")
        assert await run(build_worker(settings, session_factory, submitter, hot)) == 1
        assert _hot_polls("answered") == answered + (via == "hot")
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        row = await stored(session_factory, job_id)
        async with session_factory() as session:
            entry = await session.get(SpendEntry, uuid.UUID(job_id))
        assert entry is not None
        unlike = ("id", "created_at", "updated_at", "completed_at", "evolink_task_id")
        ends[via] = (
            {k: v for k, v in job.items() if k not in unlike},
            await history(client, job_id),
            (row.poll_attempts, row.next_attempt_at, row.claimed_by, row.final_source),
            (row.callback_received_at, row.submit_state, row.archive_status, row.error_code),
            (entry.state, entry.charged, entry.evolink_reserved),
        )
    assert ends["hot"] == ends["session"]
    assert ends["hot"][2] == (1, None, None, "poll")
    assert ends["hot"][1] == [("submit", "applied"), ("poll", "applied")]
    usage = (await client.get("/v1/usage")).json()
    assert usage["today"]["credits_reserved"] == 0


def _hot_polls(outcome: str) -> float:
    labels = {"path": "poll", "outcome": outcome}
    return REGISTRY.get_sample_value("evolink_jobs_hot_path_requests_total", labels) or 0.0
