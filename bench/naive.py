"""The naive peer: the same four paths as a first FastAPI + SQLAlchemy ORM implementation has them.

`make bench` runs it beside the service and the bare reference: the issue asks the service to
lead such an implementation (list at least 2x, create at least 3x), not merely to match it. It is
what the tutorials build: a session per request from `Depends`, ORM objects loaded and changed
in Python, `response_model` serialisation, the EvoLink call made inside the create request.
It keeps the essential guarantees a naive implementation would have (the caller's own jobs only,
the callback's token, a row lock so that a final state is applied once), nothing more.

Configured by NAIVE_DATABASE_URL, NAIVE_CALLBACK_SECRET, NAIVE_API_KEY (caller:key) and
NAIVE_EVOLINK_URL. Run: `uvicorn bench.naive:app`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Body, Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.db import utcnow
from app.jobs.models import Job, JobEvent
from app.jobs.router import to_read
from app.jobs.schemas import JobRead

SECRET = os.environ.get("NAIVE_CALLBACK_SECRET", "").encode()
CALLER, _, KEY = os.environ.get("NAIVE_API_KEY", "bench:bench-key").partition(":")
FINAL = ("completed", "failed", "cancelled")

engine = create_async_engine(
    os.environ.get("NAIVE_DATABASE_URL", "sqlite+aiosqlite://"), pool_size=10, max_overflow=10
)
Sessions = async_sessionmaker(engine, expire_on_commit=False)
http = httpx.AsyncClient(base_url=os.environ.get("NAIVE_EVOLINK_URL", "http://127.0.0.1:1"))


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    await http.aclose()
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with Sessions() as session:
        yield session


def get_caller(authorization: Annotated[str | None, Header()] = None) -> str:
    if authorization != f"Bearer {KEY}":
        raise HTTPException(401, "unauthenticated")
    return CALLER


SessionDep = Annotated[AsyncSession, Depends(get_session)]
CallerDep = Annotated[str, Depends(get_caller)]


class NewJob(BaseModel):
    prompt: str
    size: str = "1:1"
    n: int = 1


class Page(BaseModel):
    data: list[JobRead]
    next_cursor: str | None


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/jobs", status_code=202, response_model=JobRead)
async def create(body: NewJob, caller: CallerDep, session: SessionDep) -> JobRead:
    now = utcnow()
    job = Job(caller=caller, model="gpt-4o-image", prompt=body.prompt, size=body.size,
              n=body.n, image_urls=[], results=[], status="queued", created_at=now,
              updated_at=now)  # fmt: skip
    session.add(job)
    await session.commit()
    answer = await http.post("/v1/images/generations", json={"prompt": body.prompt})
    task = answer.json()
    job.evolink_task_id, job.status, job.submit_state = task["id"], task["status"], "done"
    job.updated_at = utcnow()
    await session.commit()
    return to_read(job)


@app.get("/v1/jobs", response_model=Page)
async def list_jobs(caller: CallerDep, session: SessionDep, limit: int = 20) -> Page:
    rows = await session.scalars(
        select(Job)
        .where(Job.caller == caller)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    return Page(data=[to_read(job) for job in rows], next_cursor=None)


@app.get("/v1/jobs/{job_id}", response_model=JobRead)
async def get_job(job_id: uuid.UUID, caller: CallerDep, session: SessionDep) -> JobRead:
    job = await session.get(Job, job_id)
    if job is None or job.caller != caller:
        raise HTTPException(404, "job_not_found")
    return to_read(job)


@app.post("/callbacks/evolink/{job_id}/{token}")
async def callback(
    job_id: uuid.UUID, token: str, task: Annotated[dict[str, Any], Body()], session: SessionDep
) -> dict[str, str]:
    digest = hmac.new(SECRET, job_id.bytes, hashlib.sha256).digest()
    if not hmac.compare_digest(base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), token):
        raise HTTPException(404, "not_found")
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise HTTPException(404, "not_found")
    outcome = "duplicate"
    if job.status not in FINAL and job.evolink_task_id in (None, task.get("id")):
        job.status, job.progress = str(task.get("status")), 100
        job.results = list(task.get("results") or [])
        job.updated_at = job.completed_at = job.callback_received_at = utcnow()
        outcome = "applied"
    session.add(JobEvent(job_id=job_id, source="callback", status=str(task.get("status")),
                         outcome=outcome, body=str(task)))  # fmt: skip
    await session.commit()
    return {"outcome": outcome}
