"""The spend tables: one ledger entry per job, and the counter rows that enforce the limits."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class EntryState(enum.StrEnum):
    """Whether a job's price is still held (`reserved`) or its cost is known (`settled`)."""

    RESERVED = "reserved"
    SETTLED = "settled"


class SpendEntry(Base):
    """What one job was priced at when it was created, what EvoLink reserved, what it cost."""

    __tablename__ = "spend_entries"
    __table_args__ = (Index("ix_spend_entries_caller_created_at", "caller", "created_at"),)

    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    caller: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    n: Mapped[int]
    # Our price table's figure, held against the caller's limits from the create on.
    price: Mapped[float] = mapped_column(Float)
    # EvoLink's own `usage.credits_reserved` from its create answer, when it gave one.
    evolink_reserved: Mapped[float | None] = mapped_column(Float)
    # What the job cost once it ended (0 for a task EvoLink does not bill).
    charged: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default=EntryState.RESERVED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def credits(self) -> float:
        """What the entry counts for now: its cost once settled, its price until then."""
        return self.charged if self.charged is not None else self.price


class SpendCounter(Base):
    """The running totals of one scope (a caller, or `global` for everyone) in its current windows.

    One row per scope: a create checks every limit and adds itself in one conditional UPDATE of
    its caller's row (then one of the global row), which also restarts a total whose window has
    ended. Replicas agree through the database alone, and rows are always locked caller first,
    then global, so no two transactions wait for each other in a cycle.
    """

    __tablename__ = "spend_counters"

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    minute_key: Mapped[str] = mapped_column(String(20), default="")
    minute_jobs: Mapped[int] = mapped_column(default=0)
    day_key: Mapped[str] = mapped_column(String(20), default="")
    day_credits: Mapped[float] = mapped_column(Float, default=0.0)
    month_key: Mapped[str] = mapped_column(String(20), default="")
    month_credits: Mapped[float] = mapped_column(Float, default=0.0)
    in_flight: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SpendBlock(Base):
    """A condition that refuses new jobs for a while, shared by every replica (EvoLink's 402)."""

    __tablename__ = "spend_blocks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    since_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
