"""The outbox: one row per event for a caller's webhook, and one per attempt to deliver it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow

EVENT_ID_PATTERN = r"^msg_[0-9a-f]{32}$"


def new_event_id() -> str:
    """A fresh event id (`webhook-id`): `msg_` and 32 hex digits."""
    return f"msg_{uuid.uuid4().hex}"


class NotificationType(enum.StrEnum):
    """What happened to the job (the event's `type`)."""

    COMPLETED = "job.completed"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"


class NotificationStatus(enum.StrEnum):
    """Where delivery of one event stands."""

    PENDING = "pending"  # to be delivered when next_attempt_at comes
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # 410 Gone, a refused address, or the retry schedule ran out


class Notification(Base):
    """One event for the caller's `notify_url`: its exact body (what is signed and sent), and
    the state of the background work that delivers it (claimed under a lease, like jobs)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    )

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    caller: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING)
    # Attempts since delivery (re)started: the position in NOTIFY_RETRY_SCHEDULE.
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationAttempt(Base):
    """One POST of an event to its receiver, and how it went."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("notifications.event_id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempted_by: Mapped[str] = mapped_column(String(64))
    http_status: Mapped[int | None]
    latency_seconds: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
