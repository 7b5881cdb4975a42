"""The job page's notifications block: it renders only when the job has webhook events, each
with its attempts and a "deliver again" form that carries the session's CSRF token."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from app.auth.callers import Caller
from app.db import utcnow
from app.jobs.models import Job
from app.web.routing import TEMPLATES
from app.web.service import JobDetail
from app.web.sessions import ConsoleSession


def render_job_page(**extra: object) -> tuple[str, Job]:
    now = utcnow()
    job = Job(
        id=uuid.uuid4(), caller="alpha", status="completed", progress=100, model="gpt-4o-image",
        prompt="a cat", size="1:1", n=1, image_urls=[], results=[], created_at=now,
        updated_at=now, archive_status="off",
    )  # fmt: skip
    session = ConsoleSession(Caller(name="alpha", key_sha256=b"x" * 32), "the-csrf-token")
    context = {"title": "Job", "job": job, "detail": JobDetail(job, [], []), "now": now}
    page = TEMPLATES.get_template("job.html").render(session=session, **context, **extra)
    return page, job


def test_no_notifications_block_without_notifications() -> None:
    assert "Notifications" not in render_job_page()[0]
    assert "Notifications" not in render_job_page(notifications=[])[0]


def test_notifications_render_with_attempts_and_a_deliver_again_form() -> None:
    now = utcnow()
    attempt = SimpleNamespace(attempted_at=now, http_status=500, error="server error")
    notification = SimpleNamespace(
        event_id="msg_1", type="job.completed", status="failed", url="https://hooks.test/x",
        created_at=now, next_attempt_at=None,
    )  # fmt: skip
    page, job = render_job_page(notifications=[(notification, [attempt])])
    assert '<h2 id="notifications-h">Notifications</h2>' in page
    assert "job.completed" in page and "HTTP 500" in page and "server error" in page
    action = f"/console/jobs/{job.id}/notifications/msg_1/retry"
    assert f'<form method="post" action="{action}">' in page
    assert 'name="csrf_token" value="the-csrf-token"' in page
    assert "Deliver again" in page
