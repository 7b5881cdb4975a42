"""A callback body the database cannot take, or that is not EvoLink's task, is a 400: recorded,
never applied, never a 500. Here VERIFY_CALLBACKS is off (tests/callbacks/conftest.py), so
nothing but these checks stands between a body and the job's row."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
from starlette.types import Message

from app.jobs.events import MAX_STORED_BODIES
from tests.support import evolink_payloads as payloads
from tests.support.jobs import submit

TASK = payloads.TASK_ID
LONG_URL = "https://cdn.example/" + "a" * 2048

BAD_CALLBACKS = {
    "id_nul": f'{{"id": "{TASK}\\u0000", "status": "completed"}}',
    "id_traversal": '{"id": "../../_sim/faults", "status": "completed"}',
    "id_slash": '{"id": "task-unified-1757156493/../x", "status": "completed"}',
    "id_query": '{"id": "task-unified-1757156493?x=1", "status": "completed"}',
    "id_not_evolinks": '{"id": "task-1757156493-imcg5zqt", "status": "completed"}',
    "id_too_long": f'{{"id": "task-unified-{"a" * 200}", "status": "completed"}}',
    "id_lone_surrogate": f'{{"id": "{TASK}\\ud800", "status": "completed"}}',
    "status_nul": f'{{"id": "{TASK}", "status": "completed\\u0000"}}',
    "status_over_32": f'{{"id": "{TASK}", "status": "{"x" * 33}"}}',
    "progress_nan": f'{{"id": "{TASK}", "status": "processing", "progress": NaN}}',
    "progress_1e400": f'{{"id": "{TASK}", "status": "processing", "progress": 1e400}}',
    "progress_1e30": f'{{"id": "{TASK}", "status": "processing", "progress": 1e30}}',
    "estimate_nan": f'{{"id": "{TASK}", "status": "processing", "task_info": '
    '{"estimated_time": NaN}}',
    "estimate_1e400": f'{{"id": "{TASK}", "status": "processing", "task_info": '
    '{"estimated_time": 1e400}}',
    "estimate_1e30": f'{{"id": "{TASK}", "status": "processing", "task_info": '
    '{"estimated_time": 1e30}}',
    "usage_infinity": f'{{"id": "{TASK}", "status": "processing", "usage": {{"x": Infinity}}}}',
    "error_message_nul": f'{{"id": "{TASK}", "status": "failed", "error": '
    '{"code": "x", "message": "m\\u0000"}}',
    "results_javascript": f'{{"id": "{TASK}", "status": "completed", '
    '"results": ["javascript:alert(1)"]}',
    "results_text": f'{{"id": "{TASK}", "status": "completed", "results": ["just text"]}}',
    "results_too_long": f'{{"id": "{TASK}", "status": "completed", "results": ["{LONG_URL}"]}}',
    "results_control": f'{{"id": "{TASK}", "status": "completed", '
    '"results": ["https://cdn.example/a\\u001b[2J.png"]}',
    "deep_body": f'{{"id": "{TASK}", "status": "completed", "x": ' + "[" * 100 + "]" * 100 + "}",
    "raw_nul_byte": f'{{"id": "{TASK}", "status": "completed"\x00}}',
}


@pytest.mark.parametrize("raw", BAD_CALLBACKS.values(), ids=BAD_CALLBACKS.keys())
async def test_unstorable_or_foreign_callback_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter, raw: str
) -> None:
    job, path = await submit(client, evolink)
    polls = evolink.get(url__regex=r"/v1/tasks/.*").mock(return_value=httpx.Response(404))

    response = await anonymous.post(
        path, content=raw.encode(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "callback_malformed"
    after = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (after["status"], after["progress"], after["results"]) == ("pending", 0, [])
    assert after["evolink_task_id"] == TASK and after["estimated_time"] == 100
    events = (await client.get(f"/v1/jobs/{job['id']}/events")).json()["data"]
    assert events[-1]["outcome"] == "rejected" and events[-1]["source"] == "callback"
    assert isinstance(events[-1]["body"], str | dict)  # kept, and it renders
    assert not polls.called


async def test_a_bounded_task_still_applies(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    """The limits refuse only the hostile: EvoLink's own shapes pass, at their edges."""
    job, path = await submit(client, evolink)
    edge = payloads.processing_task(progress=100)
    edge["task_info"] = {"estimated_time": 604800}
    edge["status"] = "processing"
    assert (await anonymous.post(path, json=edge)).json() == {"outcome": "applied"}
    url = "http://cdn.example/" + "a" * (2048 - len("http://cdn.example/"))
    done = payloads.completed_task(results=[url])
    assert (await anonymous.post(path, json=done)).json() == {"outcome": "applied"}
    stored = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (stored["status"], stored["results"]) == ("completed", [url])
    assert stored["estimated_time"] == 604800


async def test_a_body_nested_5000_deep_never_breaks_the_history(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    deep = "[" * 5000 + "]" * 5000
    nan = f'{{"id": "{TASK}", "status": "processing", "progress": NaN}}'
    surrogate = f'{{"id": "{TASK}", "status": "processing", "note": "\\ud800"}}'
    for raw in (deep, nan, surrogate):
        response = await anonymous.post(
            path, content=raw.encode(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400

    history = await client.get(f"/v1/jobs/{job['id']}/events")
    assert history.status_code == 200, history.text
    bodies = [e["body"] for e in history.json()["data"] if e["outcome"] == "rejected"]
    assert bodies == [
        deep,
        nan,
        surrogate,
    ]  # shown as the text they were: they do not render as JSON


async def test_a_job_keeps_a_bounded_number_of_bodies_and_counts_the_rest(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, path = await submit(client, evolink)
    big = {**payloads.completed_task(), "padding": "x" * 60_000}
    assert (await anonymous.post(path, json=big)).json() == {"outcome": "applied"}
    extra = MAX_STORED_BODIES + 7
    for n in range(extra):
        # Duplicates of the final callback, and junk, in turns (concurrently, in pairs).
        duplicate = anonymous.post(path, json=big)
        junk = anonymous.post(path, content=b"not json " + str(n).encode())
        answers = await asyncio.gather(duplicate, junk)
        assert [a.status_code for a in answers] == [200, 400]

    events: list[dict[str, object]] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/jobs/{job['id']}/events", params=params)).json()
        assert len(page["data"]) <= 7
        events += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(events) == 2 + 2 * extra  # submit, applied, then every delivery: none lost
    assert len({e["id"] for e in events}) == len(events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)  # type: ignore[type-var]
    unapplied = [e for e in events if e["outcome"] != "applied"]
    kept = [e for e in unapplied if e["body"] is not None]
    dropped = [e for e in unapplied if e["body"] is None]
    assert len(kept) == MAX_STORED_BODIES
    assert len(dropped) == 2 * extra - MAX_STORED_BODIES
    assert all("body not kept" in str(e["detail"]) for e in dropped)
    # The applied body is never dropped: it is what the job is.
    [applied] = [e for e in events if e["outcome"] == "applied" and e["source"] == "callback"]
    assert isinstance(applied["body"], dict) and applied["body"]["padding"] == "x" * 60_000


async def test_history_pages_reject_a_cursor_that_is_not_ours(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    job, _ = await submit(client, evolink)
    for cursor in ("garbage", "ZXY6LTE", "ev:1", "ZXY6OTk5OTk5OTk5OTk5OTk5OTk5OTk5"):
        response = await client.get(f"/v1/jobs/{job['id']}/events", params={"cursor": cursor})
        assert response.status_code == 400, cursor
        assert response.json()["code"] == "invalid_cursor"
    for limit in ("0", "201", "x"):
        response = await client.get(f"/v1/jobs/{job['id']}/events", params={"limit": limit})
        assert response.status_code == 422


async def test_a_client_that_disconnects_mid_callback_is_no_error(
    client: httpx.AsyncClient, evolink: respx.MockRouter, app: object
) -> None:
    """The body stops half-way: answered 400, logged as info, never an ERROR with a trace."""
    from structlog.testing import capture_logs

    job, path = await submit(client, evolink)
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"id": "task-unified-', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
        "state": {},
    }
    with capture_logs() as logs:
        await app(scope, receive, send)  # type: ignore[operator]  # raises if it escapes

    [start] = [m for m in sent if m["type"] == "http.response.start"]
    assert start["status"] == 400
    assert not [e for e in logs if e["log_level"] in ("error", "critical", "exception")]
    assert not [e for e in logs if e.get("exc_info")]
    after = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert after["status"] == "pending"
