"""When background work acts on a job: deadlines, backoff and leases, from the settings; and
the name under which this process holds its claims."""

from __future__ import annotations

import os
import random
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config import Settings


@dataclass(frozen=True)
class Policy:
    """The timing rules for submitting, polling and giving up (all in seconds)."""

    reconcile_grace: float = 30
    job_deadline: float = 1800
    submit_unknown_deadline: float = 600
    default_estimated: float = 100
    poll_backoff_initial: float = 5
    poll_backoff_max: float = 60
    submit_backoff_initial: float = 2
    submit_backoff_max: float = 120
    claim_lease: float = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy the operators configured."""
        return cls(
            reconcile_grace=settings.reconcile_grace_seconds,
            job_deadline=settings.job_deadline_seconds,
            submit_unknown_deadline=settings.submit_unknown_deadline_seconds,
            default_estimated=settings.default_estimated_seconds,
            poll_backoff_initial=settings.poll_backoff_initial_seconds,
            poll_backoff_max=settings.poll_backoff_max_seconds,
            submit_backoff_initial=settings.submit_backoff_initial_seconds,
            submit_backoff_max=settings.submit_backoff_max_seconds,
            claim_lease=settings.claim_lease_seconds,
        )

    def first_poll_at(self, accepted_at: datetime, estimated_time: float | None) -> datetime:
        """When a callback is overdue: EvoLink's estimate (or ours) plus the grace."""
        expected = estimated_time if estimated_time is not None else self.default_estimated
        return accepted_at + timedelta(seconds=expected + self.reconcile_grace)

    def next_poll_at(
        self, now: datetime, attempts: int, created_at: datetime, retry_after: float | None = None
    ) -> datetime:
        """The next poll after `attempts` polls: exponential backoff, never sooner than EvoLink's
        Retry-After, never past the deadline."""
        delay = _backoff(self.poll_backoff_initial, self.poll_backoff_max, attempts)
        delay = max(delay, retry_after or 0)
        return min(now + timedelta(seconds=delay), self.deadline(created_at))

    def next_submit_at(self, now: datetime, attempts: int, retry_after: float | None) -> datetime:
        """The next create attempt: backoff, but never sooner than EvoLink's Retry-After."""
        delay = _backoff(self.submit_backoff_initial, self.submit_backoff_max, attempts)
        return now + timedelta(seconds=max(delay, retry_after or 0))

    def next_confirmation_at(
        self, now: datetime, attempts: int, verdict_at: datetime
    ) -> datetime | None:
        """The next try at confirming a late final callback for a job we already gave up.

        Backoff as for polls, for at most the job deadline again after our verdict; None then.
        """
        delay = _backoff(self.poll_backoff_initial, self.poll_backoff_max, attempts)
        when = now + timedelta(seconds=delay)
        return when if when <= verdict_at + timedelta(seconds=self.job_deadline) else None

    def deadline(self, created_at: datetime) -> datetime:
        """When an unfinished job is given up."""
        return created_at + timedelta(seconds=self.job_deadline)

    def unknown_deadline(self, submitted_at: datetime) -> datetime:
        """When a create request whose answer was lost is given up, absent a callback."""
        return submitted_at + timedelta(seconds=self.submit_unknown_deadline)

    def lease_until(self, now: datetime) -> datetime:
        """When a claim taken now lapses."""
        return now + timedelta(seconds=self.claim_lease)


def process_identity() -> str:
    """A name for this process's claims: host, pid and a random suffix."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _backoff(initial: float, ceiling: float, attempts: int) -> float:
    base: float = min(ceiling, initial * 2.0 ** max(0, attempts - 1))
    # Jitter spreads retries from many jobs (and replicas) that failed together.
    return base * random.uniform(0.8, 1.0)  # noqa: S311 - not for security
