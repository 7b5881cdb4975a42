"""What a job's end does to its ledger entry and to its scopes' counters, worked out in Python.

`spend.service` writes a settlement through the session; the hot callback path
(app/hot/applying.py) writes the same settlement with prepared statements. Either way the rules
are these.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from app.jobs.models import EventSource, Job, JobStatus, SubmitState
from app.metrics import CREDITS_SPENT
from app.spend import windows
from app.spend.limits import GLOBAL_SCOPE, caller_scope
from app.spend.models import EntryState, SpendEntry
from app.spend.windows import Kind

log = structlog.get_logger("app.spend.service")


@dataclass(frozen=True)
class Settlement:
    """A job's final cost, and how its entry and the counters of its creation's windows change."""

    job_id: uuid.UUID
    caller: str
    status: JobStatus
    cost: float
    entry_values: dict[str, Any]
    # The change to the day's and month's credits (cost minus what the entry counted so far).
    delta: float
    # The entry was still reserved: its place in flight is given back.
    release: bool
    day_key: str
    month_key: str

    @property
    def scopes(self) -> tuple[str, str]:
        """The counter rows to correct, in the order `reserve` locks them (caller, then global)."""
        return caller_scope(self.caller), GLOBAL_SCOPE


def settlement(
    job: Job, entry: SpendEntry, status: JobStatus, source: EventSource, at: datetime
) -> Settlement:
    """How `job`, which just ended with `status` because of `source`, settles `entry` at `at`."""
    values: dict[str, Any] = {}
    reserved = evolink_credits_reserved(job.usage)
    if reserved is not None and entry.evolink_reserved is None:
        values["evolink_reserved"] = entry.evolink_reserved = reserved
    cost = final_cost(job, entry, status, source)
    values.update(charged=cost, state=EntryState.SETTLED, settled_at=at)
    day, month = (windows.window_key(kind, entry.created_at) for kind in (Kind.DAY, Kind.MONTH))
    return Settlement(
        job_id=job.id,
        caller=entry.caller,
        status=status,
        cost=cost,
        entry_values=values,
        delta=cost - entry.credits,
        release=entry.state == EntryState.RESERVED,
        day_key=day,
        month_key=month,
    )


def settled(done: Settlement) -> None:
    """Count and log a settlement once it is written."""
    spent = done.cost if done.release else max(0.0, done.delta)
    if spent:
        CREDITS_SPENT.labels(caller=done.caller).inc(spent)
    log.info("job_cost_settled", job_id=str(done.job_id), status=done.status, credits=done.cost)


def final_cost(job: Job, entry: SpendEntry, status: JobStatus, source: EventSource) -> float:
    """What a job that ended cost: EvoLink bills completed tasks for the images produced.

    Failed and cancelled tasks are not billed, nor is a create EvoLink refused. A verdict of our
    own (deadline, lost answer, vanished task) on a job EvoLink may have run keeps its price:
    EvoLink may have billed it, and its real answer, if one comes, settles the job again.
    """
    if status is JobStatus.COMPLETED:
        base = entry.evolink_reserved if entry.evolink_reserved is not None else entry.price
        produced = len(job.results or [])
        if produced and job.n and produced < job.n:
            return base * produced / job.n
        return base
    if source is EventSource.LOCAL and _may_have_run(job):
        return entry.price
    return 0.0


def _may_have_run(job: Job) -> bool:
    return job.evolink_task_id is not None or job.submit_state != SubmitState.WAITING


def evolink_credits_reserved(usage: dict[str, Any] | None) -> float | None:
    """EvoLink's `usage.credits_reserved`, when it is a number."""
    value = (usage or {}).get("credits_reserved")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value >= 0 else None
