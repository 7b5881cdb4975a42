"""The usage and credits views: HTTP only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.dependencies import CurrentCallerDep
from app.db import SessionDep
from app.openapi import problem_responses
from app.spend import reports
from app.spend.dependencies import BalanceDep, SpendPolicyDep
from app.spend.schemas import CreditsRead, UsageRead

router = APIRouter(prefix="/v1", tags=["spend"])


@router.get(
    "/usage",
    response_model=UsageRead,
    responses=problem_responses(401, 403, 404, 422),
    summary="Jobs and credits today and this month, and the limits",
)
async def get_usage(
    caller: CurrentCallerDep,
    session: SessionDep,
    policy: SpendPolicyDep,
    of: Annotated[
        str | None,
        Query(alias="caller", max_length=64, description="Another caller's (admins only)."),
    ] = None,
) -> UsageRead:
    """The caller's own usage; an admin may name another caller."""
    name = reports.whose_usage(policy, caller.name, caller.admin, of)
    return await reports.usage(session, policy, name)


@router.get(
    "/credits",
    response_model=CreditsRead,
    responses=problem_responses(401, 403),
    summary="EvoLink's balance and today's spend (admins only)",
)
async def get_credits(
    caller: CurrentCallerDep, session: SessionDep, balance: BalanceDep
) -> CreditsRead:
    """EvoLink's balance, read at most once a minute, beside the ledger's spend today."""
    reports.require_admin(caller.admin)
    return await reports.credits(session, balance)
