"""The jobs table and its event history."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class JobStatus(enum.StrEnum):
    """Where a job is; the last three are final."""

    QUEUED = "queued"
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class EventSource(enum.StrEnum):
    """What told us about the task."""

    SUBMIT = "submit"
    CALLBACK = "callback"
    POLL = "poll"
    LOCAL = "local"  # our own verdict, e.g. a deadline that passed


class EventOutcome(enum.StrEnum):
    """What an observation of the task did to the job."""

    APPLIED = "applied"
    DEFERRED = "deferred"  # a final callback held until EvoLink's task API confirms it
    DUPLICATE = "duplicate"
    STALE = "stale"
    REJECTED = "rejected"


class SubmitState(enum.StrEnum):
    """Where the create request stands; decides what background work may do with a job."""

    WAITING = "waiting"  # not sent yet: send when next_attempt_at comes
    SENDING = "sending"  # a process is sending it now, under its claim
    UNKNOWN = "unknown"  # sent, but the answer was lost: never resend, wait for a callback
    DONE = "done"  # EvoLink answered (accepted or refused)


class Job(Base):
    """One generation request from one caller, and what EvoLink has told us about it."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_caller_created_at", "caller", "created_at", "id"),
        # The web console's admin view: every caller's jobs, newest first.
        Index("ix_jobs_created_at", "created_at", "id"),
        Index("ix_jobs_status_updated_at", "status", "updated_at"),
        Index("ix_jobs_next_attempt_at", "next_attempt_at"),
        # Purges of finished jobs, and worker shutdown (release_all), without full scans.
        Index("ix_jobs_completed_at", "completed_at"),
        Index("ix_jobs_claimed_by", "claimed_by"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    caller: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    progress: Mapped[int] = mapped_column(default=0)
    model: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)
    size: Mapped[str | None] = mapped_column(String(16))
    n: Mapped[int]
    image_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    mask_url: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    evolink_task_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    results: Mapped[list[str]] = mapped_column(JSON, default=list)
    error_code: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    estimated_time: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    final_source: Mapped[str | None] = mapped_column(String(16))
    callback_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The results archive (app/archive): set to `pending` when the job completes.
    archive_status: Mapped[str | None] = mapped_column(String(16), index=True)
    # Where the caller wants its final event POSTed (app/notifications), if anywhere.
    notify_url: Mapped[str | None] = mapped_column(Text)

    # Background work: what is due when, and which process holds the job meanwhile.
    submit_state: Mapped[str] = mapped_column(String(16), default=SubmitState.WAITING)
    submit_attempts: Mapped[int] = mapped_column(default=0)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    poll_attempts: Mapped[int] = mapped_column(default=0)
    # When a callback last asked for a confirmation poll, of which task: callbacks naming that
    # task again within POLL_BACKOFF_INITIAL_SECONDS ask for none sooner (state_machine.py).
    confirm_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirm_task_id: Mapped[str | None] = mapped_column(String(128))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobEvent(Base):
    """One observation of a job's EvoLink task (a callback, a poll, the create answer)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)


class IdempotencyKey(Base):
    """A caller's Idempotency-Key: the request it first came with, and the answer it got."""

    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    response_status: Mapped[int | None]
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
