"""The console's pages over HTTP, in process: who sees which jobs, filters, keyset pages, the
live fragments, one job's story, and spend computed from the jobs' usage."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.db import utcnow
from app.notifications.models import Notification, NotificationAttempt
from app.spend.models import SpendEntry
from app.web.service import TIMELINE_PAGE
from tests.support.rows import set_job
from tests.web.conftest import (
    GAMMA_KEY,
    Sessions,
    add_event,
    add_job,
    browser,
    csrf_token,
    sign_in,
)


def job_ids(html: str) -> list[str]:
    """The ids of the job rows on a page, in order."""
    return re.findall(r'<tr id="job-([0-9a-f-]{36})"', html)


async def test_a_caller_sees_only_its_own_jobs_newest_first(
    alpha_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    now = utcnow()
    older = await add_job(session_factory, "alpha", "older", created_at=now - timedelta(hours=2))
    newer = await add_job(session_factory, "alpha", "newer", created_at=now - timedelta(hours=1))
    theirs = await add_job(session_factory, "beta", "beta's", created_at=now)
    page = await alpha_console.get("/console")
    assert page.status_code == 200 and "<title>Jobs" in page.text
    assert job_ids(page.text) == [str(newer.id), str(older.id)]
    assert str(theirs.id) not in page.text
    # A caller filter means nothing to a caller that is not an admin.
    assert job_ids((await alpha_console.get("/console?caller=beta")).text) == job_ids(page.text)
    assert 'id="f-caller"' not in page.text


async def test_an_admin_sees_every_callers_jobs_and_can_filter_by_caller(
    ops_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    mine = await add_job(session_factory, "alpha", "alpha's")
    theirs = await add_job(session_factory, "beta", "beta's")
    page = await ops_console.get("/console")
    assert set(job_ids(page.text)) == {str(mine.id), str(theirs.id)}
    assert 'id="f-caller"' in page.text and '<option value="gamma">' in page.text
    assert job_ids((await ops_console.get("/console?caller=beta")).text) == [str(theirs.id)]
    assert (await ops_console.get(f"/console/jobs/{mine.id}")).status_code == 200


async def test_filters_by_status_date_and_case_insensitive_prompt(
    alpha_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    day = datetime(2026, 3, 10, 12, tzinfo=UTC)
    fox = await add_job(session_factory, prompt="A Red FOX at dawn", created_at=day)
    failed = await add_job(
        session_factory, prompt="a grey fox", status="failed", created_at=day - timedelta(days=2)
    )
    percent = await add_job(session_factory, prompt="100% cotton_shirt", created_at=day)

    async def ids(query: str) -> set[str]:
        page = await alpha_console.get(f"/console?{query}")
        assert page.status_code == 200, page.text
        return set(job_ids(page.text))

    assert await ids("q=red+fox") == {str(fox.id)}
    assert await ids("q=FOX") == {str(fox.id), str(failed.id)}
    assert await ids("q=%25+cotton") == {str(percent.id)}  # "%" is a character, not a wildcard
    assert await ids("q=0_") == set()  # so is "_"
    assert await ids("q=cotton_") == {str(percent.id)}
    assert await ids("status=failed") == {str(failed.id)}
    assert await ids("from=2026-03-09&to=2026-03-10") == {str(fox.id), str(percent.id)}
    assert await ids("to=2026-03-08") == {str(failed.id)}
    assert await ids("from=2026-03-11") == set()
    assert await ids("status=&from=&to=&q=&caller=") == {
        str(fox.id),
        str(failed.id),
        str(percent.id),
    }


async def test_bad_filters_are_a_4xx_page_that_names_them(alpha_console: httpx.AsyncClient) -> None:
    for query, named in [
        ("from=yesterday", "from"),
        ("status=lost", "status must be one of"),
        ("from=2026-03-10&to=2026-03-01", "after"),
        ("cursor=not-a-cursor", "cursor"),
        ("q=" + "x" * 300, "longer than"),
    ]:
        page = await alpha_console.get(f"/console?{query}")
        assert 400 <= page.status_code < 500, (query, page.status_code)
        assert page.headers["content-type"].startswith("text/html")
        assert named in page.text, (query, page.text)


async def test_pages_are_keyset_paginated(
    alpha_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    start = utcnow() - timedelta(days=1)
    made = [
        await add_job(session_factory, prompt=f"job {i}", created_at=start + timedelta(seconds=i))
        for i in range(53)
    ]
    first = await alpha_console.get("/console?q=job")
    shown = job_ids(first.text)
    assert shown == [str(job.id) for job in reversed(made)][:50]
    older = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert older is not None
    second = await alpha_console.get(older.group(1).replace("&amp;", "&"))
    assert job_ids(second.text) == [str(job.id) for job in reversed(made[:3])]
    assert 'rel="next"' not in second.text
    assert "q=job" in older.group(1)  # the filters are kept


async def test_running_rows_refresh_and_newer_jobs_arrive(
    alpha_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    running = await add_job(session_factory, status="processing", progress=40)
    page = await alpha_console.get("/console")
    assert f'data-live-url="/console/jobs/{running.id}/row"' in page.text
    assert 'value="40"' in page.text
    newer = re.search(r'data-newer-url="([^"]+)"', page.text)
    assert newer is not None
    poll = newer.group(1).replace("&amp;", "&")
    assert job_ids((await alpha_console.get(poll)).text) == []

    await set_job(
        session_factory, running.id, status="completed", progress=100, archive_status="off"
    )
    row = await alpha_console.get(f"/console/jobs/{running.id}/row")
    assert (
        "badge-completed" in row.text and "data-live-url" not in row.text
    )  # settled: no more polls
    arrived = await add_job(session_factory, prompt="just now")
    await add_job(session_factory, "beta", prompt="not mine")
    assert job_ids((await alpha_console.get(poll)).text) == [str(arrived.id)]


async def test_the_job_page_tells_the_jobs_story(
    alpha_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    job = await add_job(
        session_factory,
        prompt="a <b>bold</b> lighthouse",
        status="failed",
        n=2,
        size="3:2",
        image_urls=["https://example.test/in.png"],
        metadata_={"order_id": "A-1042"},
        error_code="content_policy_violation",
        error_message="The prompt was refused",
        evolink_task_id="task-unified-1",
    )
    await add_event(session_factory, job, source="submit", status="pending", outcome="applied")
    await add_event(
        session_factory,
        job,
        source="callback",
        status="failed",
        outcome="deferred",
        detail="confirming",
    )
    await add_event(session_factory, job, source="poll", status="failed", outcome="applied")
    await add_event(session_factory, job, source="callback", status="failed", outcome="duplicate")
    page = await alpha_console.get(f"/console/jobs/{job.id}")
    assert page.status_code == 200
    text = page.text
    assert "content_policy_violation" in text and "The prompt was refused" in text
    assert "&lt;b&gt;bold&lt;/b&gt;" in text and "<b>bold</b>" not in text  # escaped
    assert "https://example.test/in.png" in text and "A-1042" in text and "3:2" in text
    outcomes = re.findall(r'class="outcome outcome-(\w+)"', text)
    assert outcomes == ["applied", "deferred", "applied", "duplicate"]
    assert re.findall(r'<span class="source">(\w+)</span>', text) == [
        "created", "submit", "callback", "poll", "callback",
    ]  # fmt: skip
    assert "Notifications" not in text  # the block renders only when notifications are passed


async def test_another_callers_job_is_a_404_page(
    alpha_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    theirs = await add_job(session_factory, "beta", "beta's secret plan")
    for path in ["", "/row", "/images/0", "/images/0/thumbnail"]:
        page = await alpha_console.get(f"/console/jobs/{theirs.id}{path}")
        assert page.status_code == 404, path
        assert "beta's secret plan" not in page.text
    assert (await alpha_console.get("/console/jobs/not-a-uuid")).status_code == 422


async def test_images_of_an_unarchived_job_are_a_404(
    alpha_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    job = await add_job(
        session_factory, results=["https://files.test/a.png"], archive_status="pending"
    )
    page = await alpha_console.get(f"/console/jobs/{job.id}")
    assert "Archiving the images" in page.text
    listing = await alpha_console.get("/console")
    assert "archiving…" in listing.text
    answer = await alpha_console.get(f"/console/jobs/{job.id}/images/0/thumbnail")
    assert answer.status_code == 404 and "not archived" in answer.text


async def test_spend_counts_the_ledgers_credits_per_day_by_caller(
    app: FastAPI, ops_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    now = utcnow()

    async def spent(caller: str, price: float, charged: float | None, **job: Any) -> None:
        made = await add_job(session_factory, caller, **job)
        async with session_factory() as session:
            session.add(
                SpendEntry(
                    job_id=made.id, caller=caller, model=made.model, n=made.n, price=price,
                    charged=charged, state="settled" if charged is not None else "reserved",
                    created_at=made.created_at,
                )
            )  # fmt: skip
            await session.commit()

    await spent("gamma", 2.5, 2.5, created_at=now)
    await spent("gamma", 5, 4, created_at=now)  # settled below its price: counts for 4
    await spent("gamma", 2.5, 2.5, created_at=now - timedelta(days=3))
    await spent("gamma", 2.5, 0, status="failed", created_at=now)  # not billed
    await spent("gamma", 2.5, None, status="processing", progress=10)  # in flight: its price
    await spent("gamma", 2.5, 2.5, created_at=now - timedelta(days=40))  # too old
    await add_job(session_factory, "gamma", created_at=now)  # from before the ledger: nothing
    await spent("beta", 1, 1, created_at=now)

    page = await ops_console.get("/console/spend")
    assert page.status_code == 200
    text = page.text
    assert '<strong id="spend-total">12.5</strong>' in text  # 9 + 2.5 (gamma) + 1 (beta)
    assert (
        'role="img"' in text and text.count('<rect class="bar"') == 3
    )  # today x2 callers, 3 days ago
    cell = r"<td>([^<]+)</td>"
    budgets = re.findall(rf"<tr><td>(\w+)</td><td>([\w ,]+)</td>{cell}{cell}{cell}</tr>", text)
    gamma = {
        name: (limit, used, left)
        for caller, name, limit, used, left in budgets
        if caller == "gamma"
    }
    today = now.date()
    month_used = "11.5" if (today - timedelta(days=3)).month == today.month else "9"
    assert gamma["credits today"] == ("20", "9", "11")
    assert gamma["credits this month"][0:2] == ("100", month_used)
    assert gamma["jobs in flight"] == ("3", "1", "2")
    assert ("beta", "credits today", "no limit", "1", "—") in budgets

    async with browser(app) as gamma_console:
        assert (await sign_in(gamma_console, GAMMA_KEY)).status_code == 303
        own = await gamma_console.get("/console/spend")
        assert '<strong id="spend-total">11.5</strong>' in own.text  # gamma's alone
        assert ">beta<" not in own.text


async def test_a_long_timeline_is_read_a_page_at_a_time(
    alpha_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    job = await add_job(session_factory)
    for index in range(TIMELINE_PAGE + 3):
        await add_event(
            session_factory, job, source="callback", outcome="duplicate", detail=f"copy {index}"
        )
    first = await alpha_console.get(f"/console/jobs/{job.id}")
    assert first.text.count("outcome-duplicate") == TIMELINE_PAGE and "copy 0<" in first.text
    later = re.search(r'<a id="later-events" href="([^"]+)"', first.text)
    assert later is not None
    second = await alpha_console.get(later.group(1))
    assert second.text.count("outcome-duplicate") == 3
    assert f"copy {TIMELINE_PAGE}<" in second.text and "later-events" not in second.text


async def test_webhook_events_are_shown_and_delivered_again_with_a_csrf_token(
    alpha_console: httpx.AsyncClient, ops_console: httpx.AsyncClient, session_factory: Sessions
) -> None:
    job = await add_job(session_factory)
    theirs = await add_job(session_factory, "beta")
    async with session_factory() as session:
        for owner, event_id in [(job, "msg_alpha"), (theirs, "msg_beta")]:
            session.add(
                Notification(
                    event_id=event_id, job_id=owner.id, caller=owner.caller,
                    url="https://hooks.test/x", type="job.completed", payload="{}",
                    status="failed", attempts=7, created_at=utcnow(),
                )
            )  # fmt: skip
        await session.flush()
        session.add(
            NotificationAttempt(
                event_id="msg_alpha", attempted_at=utcnow(), attempted_by="w", http_status=503,
                error="HTTP 503",
            )
        )  # fmt: skip
        await session.commit()
    page = await alpha_console.get(f"/console/jobs/{job.id}")
    assert "Notifications" in page.text and "HTTP 503" in page.text
    retry = f"/console/jobs/{job.id}/notifications/msg_alpha/retry"
    assert (await alpha_console.post(retry, data={})).status_code == 403
    assert (await stored_notification(session_factory, "msg_alpha")).status == "failed"
    answer = await alpha_console.post(retry, data={"csrf_token": csrf_token(page.text)})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/jobs/{job.id}#notifications"
    restarted = await stored_notification(session_factory, "msg_alpha")
    assert (restarted.status, restarted.attempts) == ("pending", 0)
    # Another caller's job's event cannot be touched (its job is not found).
    other = f"/console/jobs/{theirs.id}/notifications/msg_beta/retry"
    assert (
        await alpha_console.post(other, data={"csrf_token": csrf_token(page.text)})
    ).status_code == 404
    wrong_job = f"/console/jobs/{job.id}/notifications/msg_beta/retry"
    assert (
        await alpha_console.post(wrong_job, data={"csrf_token": csrf_token(page.text)})
    ).status_code == 404
    assert (await stored_notification(session_factory, "msg_beta")).status == "failed"
    # An admin may deliver any caller's event again.
    ops_page = await ops_console.get(f"/console/jobs/{theirs.id}")
    assert (
        await ops_console.post(other, data={"csrf_token": csrf_token(ops_page.text)})
    ).status_code == 303
    assert (await stored_notification(session_factory, "msg_beta")).status == "pending"


async def stored_notification(sessions: Sessions, event_id: str) -> Notification:
    async with sessions() as session:
        found = await session.get(Notification, event_id)
        assert found is not None
        return found
