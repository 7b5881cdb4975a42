"""How values read on the console's pages: ages, sizes, times (Jinja filters)."""

from __future__ import annotations

from datetime import datetime

from app.db import utcnow


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago `moment` was, in the largest unit that fits ("3 min ago")."""
    if moment is None:
        return ""
    seconds = max(0, int(((now or utcnow()) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def file_size(count: int | None) -> str:
    """A byte count for people: 1.8 MB, 640 kB, 12 B."""
    if count is None:
        return ""
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f} MB"
    if count >= 1_000:
        return f"{count / 1_000:.0f} kB"
    return f"{count} B"


def timestamp(moment: datetime | None) -> str:
    """A UTC time to the second, as the page shows it."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def credits(amount: float | None) -> str:
    """A credit amount to two decimals, without trailing zeros."""
    if amount is None:
        return "—"
    return f"{amount:,.2f}".rstrip("0").rstrip(".")
