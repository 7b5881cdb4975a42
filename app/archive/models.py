"""The archive's table: one row per result image, which is also its unit of background work."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class ArchiveStatus(enum.StrEnum):
    """Where archiving of a completed job stands (`jobs.archive_status`)."""

    PENDING = "pending"
    ARCHIVED = "archived"
    FAILED = "failed"
    OFF = "off"  # archiving was turned off (ARCHIVE_URL=off) when the job completed


class ImageStatus(enum.StrEnum):
    """Where one result image stands."""

    PENDING = "pending"
    ARCHIVED = "archived"
    FAILED = "failed"
    EXPIRED = "expired"  # stored, then deleted by retention


class ArchiveImage(Base):
    """One of a completed job's result images: where it came from, what was stored, and the
    state of the background work that stores it (claimed like jobs, under a lease)."""

    __tablename__ = "archive_images"
    __table_args__ = (
        Index("ix_archive_images_next_attempt_at", "next_attempt_at"),
        Index("ix_archive_images_status_stored_at", "status", "stored_at"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), default=ImageStatus.PENDING)
    source_url: Mapped[str] = mapped_column(Text)
    source_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    job_completed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # What was stored.
    object_key: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None]
    width: Mapped[int | None]
    height: Mapped[int | None]
    sha256: Mapped[str | None] = mapped_column(String(64))
    thumbnail_key: Mapped[str | None] = mapped_column(String(255))
    thumbnail_bytes: Mapped[int | None]
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64))
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Background work: attempts, the last error, when next, and who holds it.
    attempts: Mapped[int] = mapped_column(default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
