"""The notifications API's response bodies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.notifications.models import EVENT_ID_PATTERN, Notification, NotificationAttempt

ATTEMPT_EXAMPLE: dict[str, Any] = {
    "attempted_at": "2026-11-26T10:02:03Z",
    "http_status": 500,
    "latency_seconds": 0.041,
    "error": "HTTP 500",
}


class NotificationAttemptRead(BaseModel):
    """One POST of the event to the caller's URL."""

    model_config = ConfigDict(json_schema_extra={"examples": [ATTEMPT_EXAMPLE]})

    attempted_at: datetime
    http_status: int | None = Field(description="The receiver's answer; null if none came.")
    latency_seconds: float | None
    error: str | None = Field(description="Why it was not delivered; null when it was (2xx).")


class NotificationRead(BaseModel):
    """One event for the job's `notify_url`, its delivery state and every attempt."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "msg_5f0c2a9e5b1d4c3e9f7a2d8e6b1c0a55",
                    "type": "job.completed",
                    "url": "https://render.internal/hooks/evolink",
                    "status": "delivered",
                    "created_at": "2026-11-26T10:02:03Z",
                    "next_attempt_at": None,
                    "delivered_at": "2026-11-26T10:02:08Z",
                    "payload": {"type": "job.completed", "timestamp": "…", "data": {}},
                    "attempts": [ATTEMPT_EXAMPLE, {**ATTEMPT_EXAMPLE, "http_status": 200,
                                                   "error": None}],
                }
            ]
        }
    )  # fmt: skip

    event_id: str = Field(
        description="The `webhook-id` header, the same on every retry.",
        json_schema_extra={"pattern": EVENT_ID_PATTERN},
    )
    type: str = Field(json_schema_extra={"enum": ["job.completed", "job.failed", "job.cancelled"]})
    url: str
    status: str = Field(
        description="`pending` (next attempt at `next_attempt_at`), `delivered` (2xx) or "
        "`failed` (410 Gone, a refused address, or the retry schedule ran out).",
        json_schema_extra={"enum": ["pending", "delivered", "failed"]},
    )
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The body sent, exactly (what is signed).")
    attempts: list[NotificationAttemptRead]


class NotificationList(BaseModel):
    data: list[NotificationRead]


def notification_read(
    notification: Notification, attempts: Sequence[NotificationAttempt]
) -> NotificationRead:
    """The API's view of one notification with its attempts."""
    return NotificationRead(
        event_id=notification.event_id,
        type=notification.type,
        url=notification.url,
        status=notification.status,
        created_at=notification.created_at,
        next_attempt_at=notification.next_attempt_at,
        delivered_at=notification.delivered_at,
        payload=json.loads(notification.payload),
        attempts=[
            NotificationAttemptRead(
                attempted_at=a.attempted_at,
                http_status=a.http_status,
                latency_seconds=a.latency_seconds,
                error=a.error,
            )
            for a in attempts
        ],
    )
