"""How every background loop (jobs, archive, webhooks) ends: let the work under way finish for a
grace period, cancel the rest, then give up the claims this process holds.

With the database down the claims cannot be released; their leases lapse instead (another
process takes them over after CLAIM_LEASE_SECONDS), which is one warning, not a trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Set
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import database_error_fields, is_database_unavailable

log = structlog.get_logger(__name__)

ReleaseAll = Callable[[AsyncSession, str], Awaitable[int]]


async def finish_in_flight(tasks: Set[asyncio.Task[Any]], grace_seconds: float) -> None:
    """Wait up to `grace_seconds` for `tasks`, then cancel those still running and wait for
    them to unwind."""
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=grace_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def release_at_shutdown(
    sessions: async_sessionmaker[AsyncSession], release_all: ReleaseAll, owner: str, event: str
) -> int:
    """`release_all(session, owner)` in a transaction of its own; how many claims it gave up.

    Logs `event` instead of raising: shutdown goes on whatever the database does.
    """
    try:
        async with sessions() as session:
            released = await release_all(session, owner)
            await session.commit()
    except Exception as exc:
        if is_database_unavailable(exc):
            log.warning(event, owner=owner, **database_error_fields(exc))
        else:
            log.exception(event, owner=owner)
        return 0
    return released
