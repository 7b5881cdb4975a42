"""The usage and credits views."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class StatusUsage(BaseModel):
    """Jobs of one status in a window, and the credits they count for."""

    jobs: int
    credits: float


class WindowUsage(BaseModel):
    """Jobs created in one UTC calendar window and their credits, from the ledger."""

    start: datetime
    end: datetime
    jobs: int
    credits: float = Field(
        description="Settled costs plus the prices still held for jobs not yet finished."
    )
    credits_reserved: float = Field(description="The part of `credits` held for unfinished jobs.")
    by_status: dict[str, StatusUsage]


class LimitRead(BaseModel):
    """One limit, what its current window has used and what remains."""

    name: str
    scope: Literal["caller", "global"]
    value: float | None = Field(description="None: no limit.")
    used: float
    remaining: float | None
    resets_at: datetime | None = Field(description="When the window ends (None for in flight).")


class UsageRead(BaseModel):
    """A caller's jobs and credits today and this month, and its limits."""

    caller: str
    today: WindowUsage
    month: WindowUsage
    limits: list[LimitRead]


class EvolinkBalance(BaseModel):
    """EvoLink's `GET /v1/credits`, as last read (cached for a minute)."""

    remaining_credits: float | None = Field(
        description="What this service can still spend: the key's allowance, or the account's "
        "balance if lower."
    )
    token: dict[str, float | bool | None] | None
    user: dict[str, float | bool | None] | None
    fetched_at: datetime


class CreditsRead(BaseModel):
    """EvoLink's balance beside what the ledger says was spent today (admins only)."""

    evolink: EvolinkBalance | None
    evolink_error: str | None = Field(description="Why EvoLink's balance could not be read.")
    warn_below: float | None
    low: bool | None
    today: WindowUsage
    today_by_caller: dict[str, float]
