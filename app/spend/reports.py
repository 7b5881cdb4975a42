"""The usage and credits views, read from the ledger and the limit counters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.evolink.errors import EvolinkError
from app.spend import repository, windows
from app.spend.balance import BalanceWatch
from app.spend.errors import AdminOnly, CallerNotFound
from app.spend.limits import GLOBAL_SCOPE, caller_scope, limits_for, window_keys
from app.spend.policy import SpendPolicy
from app.spend.repository import StatusTotal
from app.spend.schemas import CreditsRead, LimitRead, StatusUsage, UsageRead, WindowUsage
from app.spend.windows import Kind


def whose_usage(policy: SpendPolicy, asking: str, admin: bool, wanted: str | None) -> str:
    """The caller whose usage `asking` may see: its own, or any known caller's for an admin."""
    if wanted is None or wanted == asking:
        return asking
    if not admin:
        raise AdminOnly("only admin callers may see another caller's usage")
    if policy.callers.get(wanted) is None:
        raise CallerNotFound(f"no caller named {wanted!r}")
    return wanted


def require_admin(admin: bool) -> None:
    """AdminOnly unless the caller is an admin."""
    if not admin:
        raise AdminOnly("only admin callers may see EvoLink's credits")


async def usage(session: AsyncSession, policy: SpendPolicy, caller: str) -> UsageRead:
    """A caller's jobs and credits today and this month, and each limit with what remains."""
    at = windows.now()
    today = await _window_usage(session, caller, windows.window(Kind.DAY, at))
    month = await _window_usage(session, caller, windows.window(Kind.MONTH, at))
    limits = []
    scopes = (caller_scope(caller), GLOBAL_SCOPE)
    totals = await repository.totals(session, scopes, window_keys(at))
    for limit in limits_for(policy, caller):
        used = round(limit.used(totals[limit.scope_key(caller)]), 4)
        ends = None if limit.kind is Kind.IN_FLIGHT else windows.window(limit.kind, at).end
        remaining = None if limit.value is None else round(max(0.0, limit.value - used), 4)
        limits.append(LimitRead(name=limit.name, scope=limit.scope, value=limit.value,
                                used=used, remaining=remaining, resets_at=ends))  # fmt: skip
    return UsageRead(caller=caller, today=today, month=month, limits=limits)


async def credits(session: AsyncSession, balance: BalanceWatch) -> CreditsRead:
    """EvoLink's balance (cached for a minute) beside the ledger's spend today, all callers."""
    window = windows.window(Kind.DAY, windows.now())
    totals = await repository.totals_by_status(session, None, window.start, window.end)
    by_caller: dict[str, float] = {}
    for total in totals:
        by_caller[total.caller] = round(by_caller.get(total.caller, 0.0) + total.credits, 4)
    error = None
    try:
        reading = (await balance.current()).view()
    except EvolinkError as exc:
        reading, error = None, exc.message
    return CreditsRead(
        evolink=reading,
        evolink_error=error,
        warn_below=balance.warn_below,
        low=balance.low,
        today=_summed(totals, window.start, window.end),
        today_by_caller=dict(sorted(by_caller.items())),
    )


async def _window_usage(session: AsyncSession, caller: str, window: windows.Window) -> WindowUsage:
    totals = await repository.totals_by_status(session, caller, window.start, window.end)
    return _summed(totals, window.start, window.end)


def _summed(totals: Sequence[StatusTotal], start: datetime, end: datetime) -> WindowUsage:
    by_status: dict[str, StatusUsage] = {}
    for total in totals:
        seen = by_status.get(total.status, StatusUsage(jobs=0, credits=0.0))
        by_status[total.status] = StatusUsage(
            jobs=seen.jobs + total.jobs, credits=round(seen.credits + total.credits, 4)
        )
    return WindowUsage(
        start=start,
        end=end,
        jobs=sum(t.jobs for t in totals),
        credits=round(sum(t.credits for t in totals), 4),
        credits_reserved=round(sum(t.reserved for t in totals), 4),
        by_status=dict(sorted(by_status.items())),
    )
