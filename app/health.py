"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from app.db import SessionDep
from app.openapi import problem_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    """Always ok while the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(503), summary="The database answers")
async def readyz(session: SessionDep, request: Request) -> dict[str, Any]:
    """Ok when the database answers a query; 503 `database_unavailable` otherwise.

    A low EvoLink balance (below CREDITS_WARN_BELOW) is reported in `detail`, never a failure.
    """
    await session.execute(text("SELECT 1"))
    answer: dict[str, Any] = {"status": "ok"}
    balance = getattr(request.app.state, "balance", None)
    if balance is not None and balance.low:
        answer["detail"] = {
            "evolink_credits_low": {
                "remaining_credits": balance.last.credits.remaining,
                "warn_below": balance.warn_below,
            }
        }
    return answer
