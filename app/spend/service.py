"""The spend rules: reserve a job's price against every limit at create, settle it at the end.

Services flush but never commit: the caller owns the transaction. `reserve` runs in the create's
own transaction, so a refused create leaves neither a job nor a reservation behind, and an
accepted one is counted exactly once (an Idempotency-Key replay never reaches it).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.evolink.models import MODELS
from app.jobs.models import EventSource, Job, JobStatus
from app.jobs.schemas import JobCreate
from app.metrics import QUOTA_REFUSALS
from app.spend import repository, windows
from app.spend.errors import EvolinkOutOfCreditsBackoff, QuotaExceeded
from app.spend.limits import (
    GLOBAL_SCOPE,
    Limit,
    bounds_for,
    caller_scope,
    limits_for,
    window_keys,
)
from app.spend.models import EntryState, SpendEntry
from app.spend.policy import SpendPolicy
from app.spend.prices import job_price
from app.spend.settlement import Settlement, evolink_credits_reserved, settled, settlement
from app.spend.windows import Kind

log = structlog.get_logger(__name__)

ADD_ATTEMPTS = 3
OUT_OF_CREDITS = "evolink_out_of_credits"  # the job error code of a 402 and the block's name


async def refuse_early(
    session: AsyncSession, policy: SpendPolicy, caller: str, body: JobCreate
) -> None:
    """Refuse a create before anything is written: while EvoLink is out of credits, or when a
    limit is already passed as committed (a read that takes no lock, so that a burst beyond a
    spent budget waits for no row). Only `reserve` can accept."""
    await refuse_while_out_of_credits(session, policy)
    n = body.n if body.n is not None else MODELS[body.model].default_n
    price = job_price(policy.prices, body.model, n)
    at = windows.now()
    scopes = (caller_scope(caller), GLOBAL_SCOPE)
    await _refuse_if_passed(session, policy, caller, limits_for(policy, caller), price, at, scopes)


async def out_of_credits_until(session: AsyncSession, backoff_seconds: float) -> datetime | None:
    """When the back-off after EvoLink's last 402 ends; None if it is not in force now."""
    block = await repository.get_block(session, OUT_OF_CREDITS)
    if block is None:
        return None
    until = block.since_at + timedelta(seconds=backoff_seconds)
    return until if until > windows.now() else None


async def refuse_while_out_of_credits(session: AsyncSession, policy: SpendPolicy) -> None:
    """EvolinkOutOfCreditsBackoff while EvoLink's last 402 is more recent than the back-off."""
    until = await out_of_credits_until(session, policy.out_of_credits_backoff_seconds)
    if until is not None:
        left = (until - windows.now()).total_seconds()
        raise EvolinkOutOfCreditsBackoff(
            "EvoLink answered that this service's account is out of credits; new jobs are "
            f"refused until {_iso(until)} without asking it again. Tell the operators.",
            retry_after=left,
        )


async def reserve(session: AsyncSession, policy: SpendPolicy, job: Job) -> SpendEntry:
    """Hold the job's price against each of its caller's and the global limits, and write its
    ledger entry; QuotaExceeded (and nothing counted) if any limit would be passed.

    The entry is written first, so that the counter rows stay locked for as short a time as
    possible: from their conditional UPDATEs (the caller's row, then the global row, always in
    that order) to the commit.
    """
    at = windows.now()
    price = job_price(policy.prices, job.model, job.n)
    entry = SpendEntry(
        job_id=job.id,
        caller=job.caller,
        model=job.model,
        n=job.n,
        price=price,
        state=EntryState.RESERVED,
        created_at=at,
    )
    await repository.add_entry(session, entry)
    limits, keys = limits_for(policy, job.caller), window_keys(at)
    scopes = (caller_scope(job.caller), GLOBAL_SCOPE)
    for scope, which in zip(scopes, ("caller", "global"), strict=True):
        bounds = bounds_for(limits, which)
        for _ in range(ADD_ATTEMPTS):
            if await repository.add_job(session, scope, keys, price, bounds, at):
                break
            # Refused: say which limit. If none is passed any more, a job ended in between and
            # gave room back: try again.
            await _refuse_if_passed(session, policy, job.caller, limits, price, at, (scope,))
        else:
            raise AssertionError(f"counter {scope} keeps refusing a job no limit refuses")
    return entry


async def _refuse_if_passed(
    session: AsyncSession,
    policy: SpendPolicy,
    caller: str,
    limits: list[Limit],
    price: float,
    at: datetime,
    scopes: tuple[str, ...],
) -> None:
    totals = await repository.totals(session, scopes, window_keys(at))
    for limit in limits:
        scope = limit.scope_key(caller)
        if scope in totals and limit.passed_by(totals[scope], price):
            used = limit.used(totals[scope])
            raise await _refusal(session, policy, caller, limit, used, price, at)


async def _refusal(
    session: AsyncSession,
    policy: SpendPolicy,
    caller: str,
    limit: Limit,
    used: float,
    price: float,
    at: datetime,
) -> QuotaExceeded:
    assert limit.value is not None  # an unlimited counter never refuses
    amount = price if limit.counts_credits else 1.0
    label = limit.name if limit.scope == "caller" else f"global.{limit.name}"
    QUOTA_REFUSALS.labels(caller=caller, limit=label).inc()
    resets_at: datetime | None = None
    if limit.kind is Kind.IN_FLIGHT:
        oldest = await repository.oldest_open_entry_at(session, caller)
        expected = (oldest or at) + timedelta(seconds=policy.typical_job_seconds)
        retry_after = max(1.0, (expected - at).total_seconds())
        when = "when one of its jobs ends"
    else:
        resets_at = windows.window(limit.kind, at).end
        retry_after = (resets_at - at).total_seconds()
        when = f"at {_iso(resets_at)}"
    whose = f"caller {caller!r}" if limit.scope == "caller" else "all callers together"
    unit = "credits" if limit.counts_credits else "jobs"
    log.warning("quota_exceeded", limit=label, value=limit.value, used=used, requested=amount)
    return QuotaExceeded(
        f"{limit.name} of {whose} is {limit.value:g} {unit}: {used:g} used, this job needs "
        f"{amount:g}; room frees {when}.",
        retry_after=retry_after,
        limit=limit.name,
        scope=limit.scope,
        value=limit.value,
        used=round(used, 4),
        requested=amount,
        resets_at=_iso(resets_at) if resets_at else None,
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def job_changed(
    session: AsyncSession, job_id: uuid.UUID, status: JobStatus, source: EventSource
) -> None:
    """Record what EvoLink reserved (its create answer) and settle the job's cost at its end."""
    if not (status.is_final or source is EventSource.SUBMIT):
        return  # progress: nothing to record
    job, entry = await repository.job_with_entry(session, job_id)
    if job is None:
        return
    at = windows.now()
    if source is EventSource.SUBMIT and job.error_code == OUT_OF_CREDITS:
        await repository.set_block(session, OUT_OF_CREDITS, at, job.error_message or "402")
        log.warning("evolink_out_of_credits_backoff", job_id=str(job_id))
    if entry is None:
        return  # created before the ledger existed
    if status.is_final:
        # The job's row is locked by the change that brought us here, so settlements of one
        # job (a local verdict, then EvoLink's real answer overturning it) run one after the
        # other.
        await _settle(session, settlement(job, entry, status, source, at), at)
        return
    reserved = evolink_credits_reserved(job.usage)
    if reserved is not None and entry.evolink_reserved is None:
        await repository.update_entry(session, job_id, evolink_reserved=reserved)


async def _settle(session: AsyncSession, done: Settlement, at: datetime) -> None:
    await repository.update_entry(session, done.job_id, **done.entry_values)
    for scope in done.scopes:
        await repository.settle(
            session,
            scope,
            day_key=done.day_key,
            month_key=done.month_key,
            delta=done.delta,
            release=done.release,
            at=at,
        )
    settled(done)
