"""The worker's claims over the hot pool take exactly the jobs its session claims take."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from app.db import utcnow
from app.evolink.models import DEFAULT_MODEL
from app.hot import claims as hot_claims
from app.jobs.models import Job
from app.worker.claims import claim_due
from tests.support.rows import Sessions, stored

OWNER = "worker-under-test"


async def jobs_in_every_claim_state(sessions: Sessions) -> dict[str, uuid.UUID]:
    now = utcnow()
    states: dict[str, dict[str, Any]] = {
        "due": {"next_attempt_at": now - timedelta(seconds=5)},
        "due_later": {"next_attempt_at": now - timedelta(seconds=1)},
        "held": {
            "next_attempt_at": now - timedelta(seconds=5),
            "claimed_by": "another-process",
            "claim_expires_at": now + timedelta(minutes=1),
        },
        "lapsed": {
            "next_attempt_at": now - timedelta(seconds=3),
            "claimed_by": "a-dead-process",
            "claim_expires_at": now - timedelta(seconds=1),
        },
        "not_yet": {"next_attempt_at": now + timedelta(minutes=1)},
        "nothing_due": {"next_attempt_at": None},
    }
    ids = {}
    async with sessions() as session:
        for name, values in states.items():
            job = Job(caller="alpha", model=DEFAULT_MODEL, prompt=name, n=1, **values)
            session.add(job)
            await session.flush()
            ids[name] = job.id
        await session.commit()
    return ids


@pytest.mark.parametrize("limit", [10, 2])
async def test_hot_claims_take_what_session_claims_take(
    app: FastAPI, session_factory: Sessions, limit: int
) -> None:
    hot = app.state.hot_database
    if hot is None:
        pytest.skip("the hot paths run on PostgreSQL only")
    ids = await jobs_in_every_claim_state(session_factory)
    now = utcnow()
    lease = now + timedelta(minutes=5)
    async with session_factory() as session:
        by_session = {job.id for job in await claim_due(session, OWNER, now, lease, limit)}
        await session.rollback()

    claimed = await hot_claims.claim_due(hot, OWNER, now, lease, limit)
    assert {job.id for job in claimed} == by_session
    expected = ["due", "lapsed", "due_later"][:limit]
    assert by_session == {ids[name] for name in expected}
    for job in claimed:
        assert (job.claimed_by, job.claim_expires_at) == (OWNER, lease)
        row = await stored(session_factory, job.id)
        assert (row.claimed_by, row.claim_expires_at) == (OWNER, lease)
        assert row.prompt == job.prompt and row.n == job.n
    held = await stored(session_factory, ids["held"])
    assert held.claimed_by == "another-process"
    rest = await hot_claims.claim_due(hot, "someone-else", now, lease, 10)
    assert {job.id for job in rest} == {
        ids[name] for name in ["due", "lapsed", "due_later"][limit:]
    }
