"""The job page's notifications block, ready for the webhooks branch: it renders only when a
`notifications` list is passed, each with its attempts and a "deliver again" form."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from app.auth.callers import Caller
from app.db import utcnow
from app.jobs.models import Job
from app.web.routing import TEMPLATES
from app.web.service import JobDetail
from app.web.sessions import ConsoleSession


def render_job_page(**extra: object) -> str:
    now = utcnow()
    job = Job(
        id=uuid.uuid4(), caller="alpha", status="completed", progress=100, model="gpt-4o-image",
        prompt="a cat", size="1:1", n=1, image_urls=[], results=[], created_at=now,
        updated_at=now, archive_status="off",
    )  # fmt: skip
    session = ConsoleSession(Caller(name="alpha", key_sha256=b"x" * 32), "the-csrf-token")
    context = {"title": "Job", "job": job, "detail": JobDetail(job, [], []), "now": now}
    return TEMPLATES.get_template("job.html").render(session=session, **context, **extra)


def test_no_notifications_block_without_notifications() -> None:
    assert "Notifications" not in render_job_page()
    assert "Notifications" not in render_job_page(notifications=[])


def test_notifications_render_with_attempts_and_a_deliver_again_form() -> None:
    now = utcnow()
    attempt = SimpleNamespace(attempted_at=now, response_status=500, error="server error")
    notification = SimpleNamespace(
        id="n1", event="job.completed", status="failed", created_at=now, attempts=[attempt],
        redeliver_url="/console/notifications/n1/redeliver",
    )  # fmt: skip
    page = render_job_page(notifications=[notification])
    assert '<h2 id="notifications-h">Notifications</h2>' in page
    assert "job.completed" in page and "HTTP 500" in page and "server error" in page
    assert '<form method="post" action="/console/notifications/n1/redeliver">' in page
    assert 'name="csrf_token" value="the-csrf-token"' in page
    assert "Deliver again" in page
