"""The spend page's rules: credits per day over the last 30 days, and what is left of each
budget in the callers' limits. Services flush but never commit.

Credits come from the spend ledger through app/web/repository.py's `credits_*` functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.callers import Caller
from app.web import repository

SPEND_DAYS = 30


@dataclass(frozen=True)
class Budget:
    """What is left of one limit; `limit` None means unlimited."""

    name: str
    limit: float | None
    used: float

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - self.used)


@dataclass(frozen=True)
class CallerBudgets:
    """One caller's limits and what is left of each now."""

    caller: str
    budgets: list[Budget]


@dataclass(frozen=True)
class Spend:
    """Credits per day (per caller), and what is left of each budget."""

    days: list[date]
    by_caller: dict[str, list[float]]
    budgets: list[CallerBudgets]
    global_budgets: list[Budget] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(sum(values) for values in self.by_caller.values())


async def spend(
    session: AsyncSession,
    viewer: Caller,
    callers: Sequence[Caller],
    now: datetime,
    global_daily: float | None,
) -> Spend:
    """The viewer's spend over the last 30 days (every caller's for an admin) and budgets.

    Credits are the ledger's: a job counts for its price while it runs and for what it cost
    once it ended, on the UTC day it was created (as the limits count them).
    """
    only = None if viewer.admin else viewer.name
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=offset) for offset in range(SPEND_DAYS - 1, -1, -1)]
    since = datetime.combine(days[0], time(), UTC)
    by_caller: dict[str, list[float]] = {}
    for day, name, amount in await repository.credits_by_day(session, since, only):
        series = by_caller.setdefault(name, [0.0] * SPEND_DAYS)
        if day >= days[0]:
            series[(day - days[0]).days] += amount
    day_start = datetime.combine(today, time(), UTC)
    month_start = datetime.combine(today.replace(day=1), time(), UTC)
    spent_today = await repository.credits_by_caller(session, day_start, only)
    spent_month = await repository.credits_by_caller(session, month_start, only)
    in_flight = await repository.jobs_in_flight_by_caller(session, only)
    last_minute = await repository.jobs_created_by_caller(session, now - timedelta(minutes=1), only)
    shown = [caller for caller in callers if viewer.admin or caller.name == viewer.name]
    budgets = [
        CallerBudgets(
            caller.name,
            [
                Budget(
                    "credits today",
                    caller.limits.credits_per_day,
                    spent_today.get(caller.name, 0.0),
                ),
                Budget(
                    "credits this month",
                    caller.limits.credits_per_month,
                    spent_month.get(caller.name, 0.0),
                ),
                Budget(
                    "jobs in flight", caller.limits.jobs_in_flight, in_flight.get(caller.name, 0)
                ),
                Budget(
                    "jobs this minute",
                    caller.limits.jobs_per_minute,
                    last_minute.get(caller.name, 0),
                ),
            ],
        )
        for caller in shown
    ]
    global_budgets = (
        [Budget("credits today, all callers", global_daily, sum(spent_today.values()))]
        if viewer.admin
        else []
    )
    return Spend(days, dict(sorted(by_caller.items())), budgets, global_budgets)
