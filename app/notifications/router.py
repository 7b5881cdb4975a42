"""A job's webhook events over HTTP: HTTP only. Parse, call the service, commit, answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from app.auth.dependencies import CallerDep
from app.db import SessionDep
from app.notifications import service as notifications_service
from app.notifications.models import EVENT_ID_PATTERN
from app.notifications.schemas import NotificationList, NotificationRead, notification_read
from app.openapi import problem_responses

router = APIRouter(prefix="/v1/jobs", tags=["notifications"])

EventId = Annotated[
    str, Path(pattern=EVENT_ID_PATTERN, description="The event's `webhook-id` (`msg_…`).")
]


@router.get(
    "/{job_id}/notifications",
    response_model=NotificationList,
    responses=problem_responses(401, 404, 422),
    summary="A job's webhook events and their delivery attempts",
)
async def list_notifications(
    job_id: uuid.UUID, caller: CallerDep, session: SessionDep
) -> NotificationList:
    """Every event sent (or to be sent) to the job's notify_url, oldest first, with attempts."""
    rows = await notifications_service.list_notifications(session, caller, job_id)
    return NotificationList(data=[notification_read(n, attempts) for n, attempts in rows])


@router.post(
    "/{job_id}/notifications/{event_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=NotificationRead,
    responses=problem_responses(401, 404, 409, 422),
    summary="Deliver a webhook event again now",
)
async def retry_notification(
    job_id: uuid.UUID, event_id: EventId, caller: CallerDep, session: SessionDep, request: Request
) -> NotificationRead:
    """Deliver the event again at once, with the same webhook-id (and a fresh retry schedule)."""
    notification, attempts = await notifications_service.retry_now(
        session, caller, job_id, event_id
    )
    await session.commit()
    worker = getattr(request.app.state, "notifier", None)
    if worker is not None:
        worker.wake()
    return notification_read(notification, attempts)
