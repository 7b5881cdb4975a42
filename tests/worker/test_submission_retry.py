"""Submission that survives EvoLink trouble: queue and retry what surely did not reach EvoLink,
never resend what may have, and cap how many creates are in flight at once."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx

from app.db import utcnow
from app.worker.runner import Worker
from tests.support import evolink_payloads as payloads
from tests.support.rows import Sessions, ago, history, make_due, run, seconds_until, set_job, stored

CREATE = "/v1/images/generations"
UNAVAILABLE = httpx.Response(503, json=payloads.integer_error(503, "down", "service_unavailable"))


def rate_limited(retry_after: str) -> httpx.Response:
    return httpx.Response(
        429,
        json=payloads.integer_error(429, "Rate limit exceeded", "rate_limit_error"),
        headers={"Retry-After": retry_after},
    )


def create_answers(evolink: respx.MockRouter, *answers: Any) -> respx.Route:
    """EvoLink's create endpoint answers these in turn (the last one repeats)."""
    queue = list(answers)

    def answer(_request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, httpx.Response)
        return item

    route = evolink.post(CREATE).mock(side_effect=answer)
    route.reset()
    return route


SLACK = 0.001  # timestamps are kept to the microsecond


async def queued_job(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/v1/jobs", json={"prompt": "a cat", "size": "1:1"})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert job["status"] == "queued"
    return job


async def test_queued_job_is_submitted_later_with_growing_backoff(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    accepted = httpx.Response(200, json=payloads.created_task())
    create = create_answers(evolink, UNAVAILABLE, httpx.ConnectError("refused"), accepted)
    # The backoff is 2 s, then 4 s, less up to 20% of jitter, from a moment between `before`
    # and `after` (however long a loaded machine takes in between).
    before = utcnow()
    job = await queued_job(client)
    after = utcnow()
    first = (await stored(session_factory, job["id"])).next_attempt_at
    assert first is not None
    assert before + timedelta(seconds=1.6 - SLACK) <= first <= after + timedelta(seconds=2)

    assert await run(worker) == 0, "not before its backoff"
    assert create.call_count == 1

    await make_due(session_factory, job["id"])
    before = utcnow()
    await run(worker)
    after = utcnow()
    row = await stored(session_factory, job["id"])
    assert (row.status, row.submit_state, row.submit_attempts) == ("queued", "waiting", 2)
    assert row.next_attempt_at is not None
    assert before + timedelta(seconds=3.2 - SLACK) <= row.next_attempt_at
    assert row.next_attempt_at <= after + timedelta(seconds=4)

    await make_due(session_factory, job["id"])
    await run(worker)
    assert create.call_count == 3
    sent = [json.loads(call.request.content) for call in create.calls]
    assert sent[0] == sent[1] == sent[2]
    assert f"/callbacks/evolink/{job['id']}/" in sent[0]["callback_url"]
    done = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (done["status"], done["evolink_task_id"]) == ("pending", payloads.TASK_ID)
    row = await stored(session_factory, job["id"])
    assert (row.submit_state, row.submit_attempts, row.claimed_by) == ("done", 3, None)
    assert await history(client, job["id"]) == [("submit", "applied")]


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [("90", 90), ("http-date", 120), ("0", None)],
    ids=["seconds", "http-date", "zero-means-our-backoff"],
)
async def test_retry_after_is_honoured_at_retry_time(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
    retry_after: str,
    wait: float | None,
) -> None:
    if retry_after == "http-date":
        retry_after = email.utils.formatdate(time.time() + 120, usegmt=True)
    create = create_answers(evolink, httpx.ConnectError("refused"), rate_limited(retry_after))
    job = await queued_job(client)
    await make_due(session_factory, job["id"])
    before = utcnow()
    await run(worker)
    after = utcnow()
    assert create.call_count == 2
    row = await stored(session_factory, job["id"])
    assert (row.status, row.submit_state) == ("queued", "waiting")
    assert row.next_attempt_at is not None
    waited = seconds_until(row.next_attempt_at)
    if wait is None:  # the second attempt's backoff, 4 s less up to 20% of jitter
        assert before + timedelta(seconds=3.2 - SLACK) <= row.next_attempt_at
        assert row.next_attempt_at <= after + timedelta(seconds=4)
    else:
        assert wait - 2 <= waited <= wait + 1
    assert await run(worker) == 0
    assert create.call_count == 2


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            400,
            payloads.string_error("content_policy_violation", "blocked"),
            "content_policy_violation",
        ),
        (401, payloads.string_error("unauthorized", "bad key"), "evolink_auth_failed"),
        (402, payloads.string_error("insufficient_quota", "no credits"), "evolink_out_of_credits"),
    ],
)
async def test_refusal_at_retry_time_fails_the_job(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
    status: int,
    body: dict[str, Any],
    code: str,
) -> None:
    create = create_answers(evolink, rate_limited("1"), httpx.Response(status, json=body))
    job = await queued_job(client)
    await make_due(session_factory, job["id"])
    await run(worker)
    failed = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (failed["status"], failed["error"]["code"]) == ("failed", code)
    row = await stored(session_factory, job["id"])
    assert (row.submit_state, row.next_attempt_at, row.claimed_by) == ("done", None, None)
    await run(worker)
    assert create.call_count == 2


@pytest.mark.parametrize(
    ("final", "status", "code"),
    [
        (payloads.completed_task(), "completed", None),
        (
            payloads.failed_task(code="content_policy_violation"),
            "failed",
            "content_policy_violation",
        ),
    ],
)
async def test_unknown_submission_is_bound_by_its_callback_and_ends_correctly(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
    final: dict[str, Any],
    status: str,
    code: str | None,
) -> None:
    create = create_answers(evolink, httpx.Response(502, content=b"Bad gateway"))
    job = await queued_job(client)
    assert (await stored(session_factory, job["id"])).submit_state == "unknown"
    callback = httpx.URL(json.loads(create.calls.last.request.content)["callback_url"]).path
    poll = evolink.get(f"/v1/tasks/{payloads.TASK_ID}").mock(
        return_value=httpx.Response(200, json=final)
    )

    assert (await anonymous.post(callback, json=final)).json() == {"outcome": "deferred"}
    await run(worker)
    assert poll.call_count == 1
    ended = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (ended["status"], ended["evolink_task_id"]) == (status, payloads.TASK_ID)
    assert (ended["error"] or {}).get("code") == code
    await make_due(session_factory, job["id"])
    await run(worker)
    assert create.call_count == 1, "a submission that may have reached EvoLink is never resent"


async def test_unbound_unknown_submission_fails_after_its_deadline(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    create = create_answers(evolink, httpx.ReadTimeout("slow"))
    job = await queued_job(client)
    row = await stored(session_factory, job["id"])
    assert seconds_until(row.next_attempt_at) == pytest.approx(600, abs=2)
    assert await run(worker) == 0

    # Woken early (say, by a restart): it keeps waiting for the callback.
    await make_due(session_factory, job["id"])
    await run(worker)
    row = await stored(session_factory, job["id"])
    assert (row.status, row.submit_state) == ("queued", "unknown")
    assert seconds_until(row.next_attempt_at) == pytest.approx(600, abs=2)

    await set_job(session_factory, job["id"], submitted_at=ago(601), next_attempt_at=ago(1))
    await run(worker)
    failed = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (failed["status"], failed["error"]["code"]) == ("failed", "submission_unknown")
    assert create.call_count == 1


async def test_waiting_job_past_the_job_deadline_fails(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker, session_factory: Sessions
) -> None:
    create = create_answers(evolink, UNAVAILABLE)
    job = await queued_job(client)
    await set_job(session_factory, job["id"], created_at=ago(1801), next_attempt_at=ago(1))
    await run(worker)
    failed = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (failed["status"], failed["error"]["code"]) == ("failed", "deadline_exceeded")
    assert create.call_count == 1
    assert (await stored(session_factory, job["id"])).next_attempt_at is None


class SlowEvolink:
    """EvoLink that holds every create until released, counting how many it holds at once."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.release = asyncio.Event()
        self.full = asyncio.Event()  # set while `cap` creates are held
        self.in_flight = 0
        self.most_in_flight = 0
        self._ids = itertools.count(1)

    async def __call__(self, _request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight >= self.cap:
            self.full.set()
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
            self.full.clear()
        return httpx.Response(200, json=payloads.created_task(f"task-unified-{next(self._ids)}"))


@pytest.mark.parametrize("settings", [{"submit_concurrency": 2}], indirect=True)
async def test_concurrent_creates_are_capped_and_the_rest_queue(
    client: httpx.AsyncClient, evolink: respx.MockRouter, worker: Worker
) -> None:
    slow = SlowEvolink(cap=2)
    create = evolink.post(CREATE).mock(side_effect=slow)
    requests = [
        asyncio.create_task(client.post("/v1/jobs", json={"prompt": f"cat {i}"})) for i in range(5)
    ]
    pending: set[asyncio.Task[httpx.Response]] = set(requests)
    async with asyncio.timeout(5):
        await slow.full.wait()
        while len(pending) > 2:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    queued = [r.result() for r in requests if r.done()]
    assert [(r.status_code, r.json()["status"]) for r in queued] == [(202, "queued")] * 3
    assert slow.in_flight == 2

    slow.release.set()
    answered = [r.json() for r in await asyncio.gather(*requests)]
    assert sorted(j["status"] for j in answered) == ["pending"] * 2 + ["queued"] * 3
    assert create.call_count == 2

    # The worker submits the queued ones, under the same cap.
    slow.release.clear()
    await worker.tick()
    await asyncio.wait_for(slow.full.wait(), timeout=5)
    await asyncio.sleep(0.05)
    assert slow.in_flight == 2
    slow.release.set()
    await worker.drain()
    assert create.call_count == 5
    assert slow.most_in_flight == 2
    jobs = (await client.get("/v1/jobs")).json()["data"]
    assert [j["status"] for j in jobs] == ["pending"] * 5
    assert len({j["evolink_task_id"] for j in jobs}) == 5
