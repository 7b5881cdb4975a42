"""The limits a create counts against: what each one is, what it bounds, and the windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.spend import repository, windows
from app.spend.policy import SpendPolicy
from app.spend.windows import Kind

GLOBAL_SCOPE = "global"


def caller_scope(caller: str) -> str:
    """The counter scope of one caller."""
    return f"caller:{caller}"


@dataclass(frozen=True)
class Limit:
    """One limit: its name in the callers file, whom it binds, what it counts, its value."""

    name: str
    scope: str  # "caller" or "global"
    kind: Kind
    value: float | None

    @property
    def counts_credits(self) -> bool:
        return self.kind in (Kind.DAY, Kind.MONTH)

    def scope_key(self, caller: str) -> str:
        return GLOBAL_SCOPE if self.scope == "global" else caller_scope(caller)

    def used(self, totals: repository.Totals) -> float:
        """What `totals` hold against this limit."""
        return {
            Kind.MINUTE: totals.minute_jobs,
            Kind.IN_FLIGHT: totals.in_flight,
            Kind.DAY: totals.day_credits,
            Kind.MONTH: totals.month_credits,
        }[self.kind]

    def passed_by(self, totals: repository.Totals, price: float) -> bool:
        """Whether one more job of `price` would pass this limit."""
        amount = price if self.counts_credits else 1.0
        return self.value is not None and (
            self.used(totals) + amount > self.value + repository.EPSILON
        )


def limits_for(policy: SpendPolicy, caller: str) -> list[Limit]:
    """Every limit a caller's creates count against: the caller's own, then the global one."""
    mine, everyone = policy.limits_of(caller), policy.global_limits
    return [
        Limit("jobs_per_minute", "caller", Kind.MINUTE, mine.jobs_per_minute),
        Limit("jobs_in_flight", "caller", Kind.IN_FLIGHT, mine.jobs_in_flight),
        Limit("credits_per_day", "caller", Kind.DAY, mine.credits_per_day),
        Limit("credits_per_month", "caller", Kind.MONTH, mine.credits_per_month),
        Limit("credits_per_day", "global", Kind.DAY, everyone.credits_per_day),
    ]


def bounds_for(limits: list[Limit], scope: str) -> repository.Bounds:
    """The bounds of one scope (`caller` or `global`) for a conditional UPDATE of its row."""
    values = {limit.kind: limit.value for limit in limits if limit.scope == scope}
    return repository.Bounds(
        minute_jobs=_whole(values.get(Kind.MINUTE)),
        in_flight=_whole(values.get(Kind.IN_FLIGHT)),
        day_credits=values.get(Kind.DAY),
        month_credits=values.get(Kind.MONTH),
    )


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value)


def window_keys(at: datetime) -> repository.WindowKeys:
    """The counter keys of the windows `at` falls in."""
    return repository.WindowKeys(
        minute=windows.window_key(Kind.MINUTE, at),
        day=windows.window_key(Kind.DAY, at),
        month=windows.window_key(Kind.MONTH, at),
    )
