"""EvoLink's balance: read at most once a minute, exported as a metric, watched for a low mark."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from app.db import utcnow
from app.evolink.client import EvolinkClient
from app.evolink.errors import EvolinkError
from app.evolink.schemas import CreditAccount, Credits
from app.metrics import EVOLINK_CREDITS
from app.spend.schemas import EvolinkBalance

log = structlog.get_logger(__name__)

CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class Reading:
    """One answer of EvoLink's `GET /v1/credits` and when it came."""

    credits: Credits
    fetched_at: datetime
    fetched_monotonic: float

    def view(self) -> EvolinkBalance:
        """The API's view of the reading."""
        data = self.credits.data
        return EvolinkBalance(
            remaining_credits=self.credits.remaining,
            token=_account(data.token if data else None),
            user=_account(data.user if data else None),
            fetched_at=self.fetched_at,
        )


def _account(account: CreditAccount | None) -> dict[str, float | bool | None] | None:
    return account.model_dump() if account is not None else None


class BalanceWatch:
    """EvoLink's balance, cached for `CACHE_SECONDS`; with `warn_below`, also refreshed in the
    background so that a low balance is logged and shown by /readyz without anyone asking."""

    def __init__(
        self,
        evolink: EvolinkClient,
        warn_below: float | None,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.evolink = evolink
        self.warn_below = warn_below
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.last: Reading | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def current(self) -> Reading:
        """The balance, from EvoLink unless read less than a minute ago; EvolinkError if it
        cannot be read."""
        async with self._lock:  # one request to EvoLink at a time, whoever asks
            if self.last is not None and self.clock() - self.last.fetched_monotonic < (
                self.cache_seconds
            ):
                return self.last
            credits = await self.evolink.get_credits()
            self.last = Reading(credits, utcnow(), self.clock())
        self._observe(credits)
        return self.last

    @property
    def low(self) -> bool | None:
        """Whether the last known balance is below `warn_below` (None: unknown or no mark)."""
        remaining = self.last.credits.remaining if self.last else None
        if self.warn_below is None or remaining is None:
            return None
        return remaining < self.warn_below

    def _observe(self, credits: Credits) -> None:
        remaining = credits.remaining
        if remaining is None:
            return
        EVOLINK_CREDITS.set(remaining)
        if self.warn_below is not None and remaining < self.warn_below:
            log.warning(
                "evolink_credits_low",
                remaining_credits=remaining,
                warn_below=self.warn_below,
                message="EvoLink's balance is below CREDITS_WARN_BELOW: top up the account.",
            )

    def start(self) -> None:
        """Refresh in the background every `cache_seconds` (only with a `warn_below` mark)."""
        if self.warn_below is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="evolink-balance")

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.current()
            except EvolinkError as exc:
                log.warning("evolink_credits_unreadable", error=exc.message)
            await asyncio.sleep(self.cache_seconds)
