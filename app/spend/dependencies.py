"""FastAPI dependencies for the spend rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.dependencies import SettingsDep
from app.spend.balance import BalanceWatch
from app.spend.policy import SpendPolicy


async def get_spend_policy(settings: SettingsDep) -> SpendPolicy:
    """The spend settings of this app."""
    return SpendPolicy.from_settings(settings)


async def get_balance(request: Request) -> BalanceWatch:
    """The process's watch on EvoLink's balance."""
    balance: BalanceWatch = request.app.state.balance
    return balance


SpendPolicyDep = Annotated[SpendPolicy, Depends(get_spend_policy)]
BalanceDep = Annotated[BalanceWatch, Depends(get_balance)]
