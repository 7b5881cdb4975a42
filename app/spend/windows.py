"""The windows limits count in: UTC calendar minutes, days and months, and the clock.

Every spend rule reads the time through `now()` of this module, so that tests can freeze it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.db import utcnow


def now() -> datetime:
    """The current time (UTC); tests replace this function to freeze or move the clock."""
    return utcnow()


class Kind(enum.StrEnum):
    """What a counter row counts."""

    MINUTE = "minute"  # jobs created in the current UTC minute
    DAY = "day"  # credits in the current UTC day
    MONTH = "month"  # credits in the current UTC month
    IN_FLIGHT = "in_flight"  # jobs not yet final (no window)


IN_FLIGHT_WINDOW = "-"


@dataclass(frozen=True)
class Window:
    """One calendar window: its key (as counter rows hold it), start and end."""

    key: str
    start: datetime
    end: datetime


def window(kind: Kind, at: datetime) -> Window:
    """The window of `kind` that contains `at`."""
    at = at.astimezone(UTC)
    if kind is Kind.MINUTE:
        start = at.replace(second=0, microsecond=0)
        return Window(start.strftime("%Y-%m-%dT%H:%M"), start, start + timedelta(minutes=1))
    if kind is Kind.DAY:
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(start.strftime("%Y-%m-%d"), start, start + timedelta(days=1))
    if kind is Kind.MONTH:
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = (start + timedelta(days=32)).replace(day=1)
        return Window(start.strftime("%Y-%m"), start, following)
    raise ValueError(f"{kind} has no calendar window")


def window_key(kind: Kind, at: datetime) -> str:
    """The counter key of `kind` at `at` (a constant for jobs in flight)."""
    return IN_FLIGHT_WINDOW if kind is Kind.IN_FLIGHT else window(kind, at).key
