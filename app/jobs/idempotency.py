"""Idempotency-Key handling for job creation, as the IETF draft describes and Stripe practises.

The same key with the same body replays the first answer and creates nothing; with another body
it is 422; while the first request is still being answered it is 409. Keys are per caller and
kept at least IDEMPOTENCY_KEY_TTL_SECONDS (24 hours by default).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import AppError
from app.jobs import repository
from app.jobs.models import IdempotencyKey, Job
from app.jobs.schemas import JobCreate

MAX_KEY_CHARS = 255


class IdempotencyKeyReused(AppError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key used with another body"


class IdempotencyKeyInFlight(AppError):
    status, code, title = 409, "idempotency_key_in_flight", "Request with this key in progress"


class IdempotencyKeyInvalid(AppError):
    status, code, title = 400, "idempotency_key_invalid", "Invalid Idempotency-Key"


@dataclass(frozen=True)
class Replay:
    """The stored first answer to a key (or, for a key whose first request died, the job now)."""

    status: int
    body: dict[str, Any] | None
    job: Job


def fingerprint(body: JobCreate) -> str:
    """A digest of the request's meaning: the same JSON in any key order or spacing matches."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    """The key, if it is one we accept."""
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise IdempotencyKeyInvalid(f"must be 1-{MAX_KEY_CHARS} printable characters")
    return key


async def find(
    session: AsyncSession,
    caller: str,
    key: str,
    digest: str,
    *,
    ttl_seconds: float,
    in_flight_seconds: float,
) -> Replay | None:
    """What an earlier request with this key got; None if the key is new (or expired)."""
    row = await repository.get_idempotency_key(session, caller, key)
    if row is None:
        return None
    now = utcnow()
    if row.created_at < now - timedelta(seconds=ttl_seconds):
        await repository.delete_idempotency_key(session, row)
        return None
    if row.fingerprint != digest:
        raise IdempotencyKeyReused("this Idempotency-Key was first used with a different body")
    job = await repository.get_job(session, row.job_id)
    assert job is not None  # the key row cascades away with its job
    if row.completed_at is not None:
        return Replay(row.response_status or 202, row.response_body, job)
    if row.created_at > now - timedelta(seconds=in_flight_seconds):
        raise IdempotencyKeyInFlight("the first request with this key is still being answered")
    # The first request's process died before answering; the job is what it left.
    return Replay(202, None, job)


async def claim(
    session: AsyncSession,
    caller: str,
    key: str,
    digest: str,
    job_factory: Callable[[], Awaitable[Job]],
) -> Job | None:
    """Create the job and bind the key to it atomically; None if another request won the key."""
    try:
        async with session.begin_nested():
            job: Job = await job_factory()
            await repository.add_idempotency_key(
                session, IdempotencyKey(caller=caller, key=key, fingerprint=digest, job_id=job.id)
            )
    except IntegrityError:
        return None
    return job


async def complete(
    session: AsyncSession, caller: str, key: str, status: int, body: dict[str, Any]
) -> None:
    """Store the answer the first request got, for replays."""
    await repository.complete_idempotency_key(session, caller, key, status, body, utcnow())


async def purge_expired(session: AsyncSession, ttl_seconds: float) -> int:
    """Forget keys older than the TTL; how many went."""
    return await repository.delete_idempotency_keys_before(
        session, utcnow() - timedelta(seconds=ttl_seconds)
    )
