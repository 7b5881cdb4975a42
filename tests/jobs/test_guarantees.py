"""Guarantees of the jobs API that hand-made mutations of the code showed unpinned."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select, text

from app.config import Settings
from app.db import utcnow
from app.jobs.idempotency import fingerprint
from app.jobs.models import IdempotencyKey, Job
from app.jobs.schemas import JobCreate
from app.main import create_app
from tests.conftest import ALPHA_KEY, BETA_KEY, client_for
from tests.jobs.test_idempotency import BODY, accept, key
from tests.support import evolink_payloads as payloads
from tests.support.rows import Sessions, stored
from tests.worker.test_shutdown_inprocess import Gate

CREATE = "/v1/images/generations"


async def test_a_prefix_of_an_api_key_is_401(anonymous: httpx.AsyncClient) -> None:
    for secret in (ALPHA_KEY, BETA_KEY):
        for prefix in (secret[:-1], secret[: len(secret) // 2], secret[:1]):
            response = await anonymous.get(
                "/v1/jobs", headers={"Authorization": f"Bearer {prefix}"}
            )
            assert response.status_code == 401, prefix
            assert response.json()["code"] == "unauthenticated"


async def test_an_api_send_cut_off_at_shutdown_becomes_unknown(
    app: FastAPI, settings: Settings, evolink: respx.MockRouter, session_factory: Sessions
) -> None:
    """On SQLite as on PostgreSQL: the API process stops while its create is on the wire."""
    gate = Gate(httpx.Response(200, json=payloads.created_task()))
    evolink.post(CREATE).mock(side_effect=gate)
    stopping = create_app(settings, run_worker=False)
    lifespan = LifespanManager(stopping)
    await lifespan.__aenter__()
    async with client_for(stopping, ALPHA_KEY) as client:
        request = asyncio.create_task(client.post("/v1/jobs", json={"prompt": "a cat"}))
        await asyncio.wait_for(gate.entered.wait(), timeout=10)
        async with session_factory() as session:
            [job_id] = (await session.scalars(select(Job.id))).all()
        assert (await stored(session_factory, job_id)).submit_state == "sending"

        await lifespan.__aexit__(None, None, None)
        row = await stored(session_factory, job_id)
        assert (row.status, row.submit_state) == ("queued", "unknown")
        assert (row.claimed_by, row.claim_expires_at) == (None, None)

        gate.opened.set()
        with contextlib.suppress(Exception):
            await request
    assert gate.calls == 1


async def test_the_second_claim_of_a_taken_key_replays(
    client: httpx.AsyncClient,
    evolink: respx.MockRouter,
    session_factory: Sessions,
    database_url: str,
) -> None:
    """Our lookup misses a key whose first request has not committed; the insert then collides
    (IntegrityError) and the first request's answer is replayed. SQLite serializes writers, so
    the lookup never misses there: this needs PostgreSQL."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite's writers take turns: the key's insert never collides")
    create = accept(evolink)
    first = await client.post("/v1/jobs", json=BODY)
    assert first.status_code == 202
    async with session_factory() as holder:
        holder.add(
            IdempotencyKey(
                caller="alpha",
                key="collide",
                fingerprint=_fingerprint(),
                job_id=uuid.UUID(first.json()["id"]),
                response_status=202,
                response_body=first.json(),
                completed_at=utcnow(),
            )
        )
        await holder.flush()  # inserted, not committed: the request cannot see it yet
        second = asyncio.create_task(client.post("/v1/jobs", json=BODY, headers=key("collide")))
        await _wait_for_a_lock_waiter(session_factory)
        await holder.commit()
    replayed = await asyncio.wait_for(second, timeout=10)
    assert replayed.status_code == 202, replayed.text
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["id"] == first.json()["id"]
    assert create.call_count == 1
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 1


def _fingerprint() -> str:
    return fingerprint(JobCreate.model_validate(BODY))


async def _wait_for_a_lock_waiter(sessions: Sessions) -> None:
    for _ in range(500):
        async with sessions() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the request never waited on the uncommitted key")
