"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from app.db import SessionDep
from app.openapi import problem_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    """Always ok while the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(503), summary="The database answers")
async def readyz(session: SessionDep) -> dict[str, str]:
    """Ok when the database answers a query; 503 `database_unavailable` otherwise."""
    await session.execute(text("SELECT 1"))
    return {"status": "ok"}
