"""Task ids that reach EvoLink's URLs: shaped like EvoLink's, encoded as one path segment, unbound
when EvoLink does not answer them as a task, and confirmed once per burst of callbacks.

VERIFY_CALLBACKS is on here (the default), unlike the rest of tests/callbacks.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.config import Settings
from app.evolink.client import EvolinkClient, build_http_client
from app.worker.runner import Worker
from tests.conftest import make_settings
from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit
from tests.support.rows import Sessions, ago, history, make_due, run, set_job, stored

FORGED = "task-unified-1757156493-forged00"
FORGED_RESULT = "https://attacker.example/forged.png"


@pytest.fixture
def settings(database_url: str) -> Settings:
    # A long first poll backoff: the debounce it sets cannot lapse during a test on a slow
    # machine, so the count of polls is exact.
    return make_settings(database_url, poll_backoff_initial_seconds=3600)


@pytest.mark.parametrize(
    ("task_id", "path"),
    [
        ("../../_sim/faults", "/v1/tasks/%2E%2E%2F%2E%2E%2F_sim%2Ffaults"),
        ("..", "/v1/tasks/%2E%2E"),
        ("a?b#c d", "/v1/tasks/a%3Fb%23c%20d"),
        (payloads.TASK_ID, f"/v1/tasks/{payloads.TASK_ID}"),
    ],
)
async def test_a_task_id_is_one_encoded_path_segment(task_id: str, path: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404)

    async with build_http_client("https://evolink.test", 5.0, httpx.MockTransport(handler)) as http:
        with pytest.raises(Exception):  # noqa: B017 - only the request matters here
            await EvolinkClient(http, SecretStr("sk-evo-x")).get_task(task_id)
    [request] = seen
    assert request.url.raw_path.decode() == path
    assert request.url.host == "evolink.test"


async def queued_job(client: httpx.AsyncClient, evolink: respx.MockRouter) -> tuple[str, str]:
    """A job EvoLink was too busy to take (503): queued, unbound, retried later."""
    create = evolink.post("/v1/images/generations").mock(return_value=httpx.Response(503))
    job = (await client.post("/v1/jobs", json={"prompt": "a cat"})).json()
    assert job["status"] == "queued"
    path = httpx.URL(json.loads(create.calls.last.request.content)["callback_url"]).path
    return job["id"], path


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(400, json={"error": {"code": "invalid_task_id", "message": "bad id"}}),
        httpx.Response(200, json={"faults": [], "ok": True}),  # 200, but not a task
        httpx.Response(200, json=payloads.completed_task("task-unified-1-someoneelse")),
    ],
    ids=["400_invalid_task_id", "200_not_a_task", "200_another_task"],
)
async def test_a_stored_id_evolink_does_not_answer_as_a_task_is_unbound(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
    answer: httpx.Response,
) -> None:
    """A row bound to a bogus id (as callbacks could bind before ids were checked) recovers."""
    job_id, _ = await queued_job(client, evolink)
    await set_job(session_factory, job_id, evolink_task_id="../../_sim/faults")
    await make_due(session_factory, job_id)
    elsewhere = evolink.get(url__regex=r"^https://evolink\.test/_sim/.*").mock(
        return_value=httpx.Response(200, json={"faults": []})
    )
    asked = evolink.get(url__regex=r"/v1/tasks/.*").mock(return_value=answer)

    await run(worker)

    assert asked.call_count == 1 and not elsewhere.called
    assert asked.calls.last.request.url.raw_path.startswith(b"/v1/tasks/%2E%2E%2F")
    row = await stored(session_factory, job_id)
    assert (row.status, row.evolink_task_id) == ("queued", None)
    assert (await history(client, job_id))[-1] == ("poll", "rejected")


async def test_a_burst_of_callbacks_for_a_task_makes_one_confirmation_poll(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    job, path = await submit(client, evolink)
    poll = evolink.get(f"/v1/tasks/{payloads.TASK_ID}").mock(
        return_value=httpx.Response(200, json=payloads.processing_task(progress=30))
    )
    forged = payloads.completed_task(results=[FORGED_RESULT])

    for _ in range(100):
        assert (await anonymous.post(path, json=forged)).json() == {"outcome": "deferred"}
        await run(worker)

    assert poll.call_count == 1
    row = await stored(session_factory, job["id"])
    assert (row.status, row.progress, row.results) == ("processing", 30, [])
    assert row.next_attempt_at is not None  # still followed, on the polling schedule


async def test_a_task_id_evolink_denied_is_refused_without_asking_again(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    job_id, path = await queued_job(client, evolink)
    denied = evolink.get(f"/v1/tasks/{FORGED}").mock(return_value=httpx.Response(404))
    forged = payloads.completed_task(FORGED, results=[FORGED_RESULT])

    assert (await anonymous.post(path, json=forged)).json() == {"outcome": "deferred"}
    await run(worker)
    for _ in range(99):
        response = await anonymous.post(path, json=forged)
        assert response.status_code == 409
        assert response.json()["code"] == "task_mismatch"
        await run(worker)

    assert denied.call_count == 1
    row = await stored(session_factory, job_id)
    assert (row.status, row.evolink_task_id, row.results) == ("queued", None, [])

    # EvoLink's real task is still asked about at once and ends the job.
    real = evolink.get(f"/v1/tasks/{payloads.TASK_ID}").mock(
        return_value=httpx.Response(200, json=payloads.completed_task())
    )
    assert (await anonymous.post(path, json=payloads.completed_task())).json() == {
        "outcome": "deferred"
    }
    await run(worker)
    assert real.call_count == 1
    done = await stored(session_factory, job_id)
    assert (done.status, done.evolink_task_id) == ("completed", payloads.TASK_ID)


async def test_a_forged_id_cannot_hold_a_job_we_gave_up_against_evolinks_late_result(
    client: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    evolink: respx.MockRouter,
    worker: Worker,
    session_factory: Sessions,
) -> None:
    """A create answer lost, the job failed `submission_unknown`: a forged id EvoLink denies is
    unbound again, so EvoLink's real callback, arriving late, still completes the job."""
    create = evolink.post("/v1/images/generations").mock(return_value=httpx.Response(500))
    job_id = (await client.post("/v1/jobs", json={"prompt": "a cat"})).json()["id"]
    path = httpx.URL(json.loads(create.calls.last.request.content)["callback_url"]).path
    await set_job(session_factory, job_id, submitted_at=ago(3600))
    await make_due(session_factory, job_id)
    await run(worker)
    assert (await stored(session_factory, job_id)).error_code == "submission_unknown"

    denied = evolink.get(f"/v1/tasks/{FORGED}").mock(return_value=httpx.Response(404))
    forged = payloads.completed_task(FORGED, results=[FORGED_RESULT])
    assert (await anonymous.post(path, json=forged)).json() == {"outcome": "deferred"}
    await run(worker)
    assert denied.call_count == 1
    row = await stored(session_factory, job_id)
    assert (row.status, row.error_code, row.evolink_task_id) == (
        "failed",
        "submission_unknown",
        None,
    )
    assert row.next_attempt_at is None

    real = evolink.get(f"/v1/tasks/{payloads.TASK_ID}").mock(
        return_value=httpx.Response(200, json=payloads.completed_task())
    )
    assert (await anonymous.post(path, json=payloads.completed_task())).json() == {
        "outcome": "deferred"
    }
    await run(worker)
    assert real.call_count == 1
    done = await stored(session_factory, job_id)
    assert (done.status, done.evolink_task_id, done.results) == (
        "completed",
        payloads.TASK_ID,
        [payloads.RESULT_URL],
    )
