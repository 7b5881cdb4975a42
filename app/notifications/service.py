"""The rules for webhooks to callers: which events go into the outbox (in the transaction of the
change they announce), who may see and replay them, and what one delivery attempt leaves behind.

Services flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.archive import repository as archive_repository
from app.config import Settings
from app.db import utcnow
from app.errors import AppError, ResourceNotFound
from app.jobs import repository as jobs_repository
from app.jobs import service as jobs_service
from app.jobs.models import JobStatus
from app.notifications import repository, targets, wakeups
from app.notifications.models import (
    Notification,
    NotificationAttempt,
    NotificationStatus,
    NotificationType,
    new_event_id,
)

log = structlog.get_logger(__name__)

EVENT_TYPES = {
    JobStatus.COMPLETED: NotificationType.COMPLETED,
    JobStatus.FAILED: NotificationType.FAILED,
    JobStatus.CANCELLED: NotificationType.CANCELLED,
}


class NotificationNotFound(ResourceNotFound):
    code, title = "notification_not_found", "Notification not found"


class NotificationInFlight(AppError):
    status, code, title = 409, "notification_in_flight", "Notification being delivered"


async def check_notify_url(settings: Settings, caller: str, url: str) -> None:
    """Refuse, with a 422 naming why, a `notify_url` this caller may not use: no webhook secret,
    not http(s), or a host resolving to a forbidden address."""
    targets.check_caller(settings.callers.get(caller))
    await targets.check_url(targets.target_policy(settings.notify_allowed_hosts), url)


async def job_ended(session: AsyncSession, job_id: uuid.UUID, status: JobStatus) -> None:
    """The job just became `failed` or `cancelled`: its event goes into the outbox (if the job
    has a notify_url); the caller commits. `completed` waits for archiving (`archive_ended`)."""
    if status in (JobStatus.FAILED, JobStatus.CANCELLED):
        await _enqueue(session, job_id, EVENT_TYPES[status])


async def archive_ended(session: AsyncSession, job_id: uuid.UUID) -> None:
    """The completed job's archiving just ended (archived, failed or off): its `job.completed`
    event, with the durable image URLs, goes into the outbox; the caller commits."""
    await _enqueue(session, job_id, NotificationType.COMPLETED)


async def _enqueue(
    session: AsyncSession, job_id: uuid.UUID, event_type: NotificationType
) -> Notification | None:
    # Most jobs have no notify_url: one narrow query before loading the whole job.
    if await repository.notify_url_of(session, job_id) is None:
        return None
    job = await jobs_repository.get_job(session, job_id)
    if job is None or job.notify_url is None:
        return None
    # Imported here: the router imports the submitter, whose state changes call this module.
    from app.jobs.router import to_read

    now = utcnow()
    images = await archive_repository.archived_images(session, [job.id])
    body = {
        "type": str(event_type),
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": to_read(job, images).model_dump(mode="json"),
    }
    notification = Notification(
        event_id=new_event_id(),
        job_id=job.id,
        caller=job.caller,
        url=job.notify_url,
        type=event_type,
        payload=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status=NotificationStatus.PENDING,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    await repository.add_notification(session, notification)
    wakeups.written(session)
    log.info("notification_queued", job_id=str(job.id), event_id=notification.event_id)
    return notification


async def list_notifications(
    session: AsyncSession, caller: str, job_id: uuid.UUID
) -> list[tuple[Notification, list[NotificationAttempt]]]:
    """The caller's job's notifications, oldest first, each with its attempts."""
    await jobs_service.get_job(session, caller, job_id)
    notifications = await repository.list_for_job(session, job_id)
    attempts: dict[str, list[NotificationAttempt]] = {n.event_id: [] for n in notifications}
    for attempt in await repository.attempts_for(session, list(attempts)):
        attempts[attempt.event_id].append(attempt)
    return [(n, attempts[n.event_id]) for n in notifications]


async def retry_now(
    session: AsyncSession, caller: str, job_id: uuid.UUID, event_id: str
) -> tuple[Notification, list[NotificationAttempt]]:
    """Deliver the event again as soon as background work can (same event id, the retry schedule
    started over), whatever its status; NotificationInFlight while a delivery is under way."""
    await jobs_service.get_job(session, caller, job_id)
    if await repository.get_notification(session, job_id, event_id) is None:
        raise NotificationNotFound(f"job {job_id} has no notification {event_id}")
    if not await repository.restart_unless_claimed(session, event_id, utcnow()):
        raise NotificationInFlight(f"notification {event_id} is being delivered; retry later")
    notification = await repository.get_notification(session, job_id, event_id)
    assert notification is not None
    log.info("notification_retry_requested", job_id=str(job_id), event_id=event_id)
    return notification, list(await repository.attempts_for(session, [event_id]))


@dataclass(frozen=True)
class AttemptResult:
    """How one POST went: the receiver's status (None if it never answered) or an error."""

    http_status: int | None
    latency_seconds: float | None
    error: str | None = None
    refused: bool = False  # the guard refused the address: retrying cannot help

    @property
    def delivered(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def next_step(
    attempts: int, result: AttemptResult, schedule: Sequence[float], now: datetime
) -> dict[str, Any]:
    """The notification's new columns after its `attempts`-th attempt (counted since delivery
    started) went as `result`: delivered on 2xx; failed on 410 Gone, a refused address, or once
    the schedule has no delay left; otherwise pending, due after the schedule's next delay."""
    values: dict[str, Any] = {"attempts": attempts}
    if result.delivered:
        return {**values, "status": NotificationStatus.DELIVERED, "delivered_at": now,
                "next_attempt_at": None}  # fmt: skip
    if result.http_status == 410 or result.refused or attempts > len(schedule):
        return {**values, "status": NotificationStatus.FAILED, "next_attempt_at": None}
    return {**values, "next_attempt_at": now + timedelta(seconds=schedule[attempts - 1])}


async def record_attempt(
    session: AsyncSession,
    notification: Notification,
    owner: str,
    attempted_at: datetime,
    result: AttemptResult,
    schedule: Sequence[float],
) -> str | None:
    """Record an attempt `owner` made under its claim and move the notification on; its new
    status, or None when the claim had lapsed (another process owns the event now)."""
    values = next_step(notification.attempts + 1, result, schedule, utcnow())
    # The attempt happened, claim or not: the history shows it either way.
    await repository.add_attempt(
        session,
        NotificationAttempt(
            event_id=notification.event_id,
            attempted_at=attempted_at,
            attempted_by=owner,
            http_status=result.http_status,
            latency_seconds=result.latency_seconds,
            error=result.error,
        ),
    )
    if not await repository.update_claimed(session, notification.event_id, owner, values):
        return None
    return str(values.get("status", NotificationStatus.PENDING))
