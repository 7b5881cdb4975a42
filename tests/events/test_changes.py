"""Change signals go out when the changing transaction commits, and never after a rollback."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events import changes
from app.events.listener import asyncpg_dsn


async def test_signals_follow_the_transaction(
    session_factory: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    received: list[uuid.UUID] = []
    arrived = asyncio.Event()

    def got(job_id: uuid.UUID) -> None:
        received.append(job_id)
        arrived.set()

    listener: Any = None
    if database_url.startswith("postgresql"):
        listener = await asyncpg.connect(asyncpg_dsn(database_url))
        await listener.add_listener(
            changes.CHANNEL, lambda _c, _p, _ch, payload: got(uuid.UUID(payload))
        )
        unsubscribe = None
    else:
        unsubscribe = changes.subscribe(got)
    try:
        rolled_back, committed = uuid.uuid4(), uuid.uuid4()
        async with session_factory() as session:
            await changes.announce(session, rolled_back)
            await session.rollback()
            await changes.announce(session, committed)
            await asyncio.sleep(0.2)
            assert received == []  # not before the commit
            await session.commit()
        await asyncio.wait_for(arrived.wait(), 10)
        await asyncio.sleep(0.2)  # room for a wrong, late one to arrive
        assert received == [committed]
    finally:
        if listener is not None:
            await listener.close()
        if unsubscribe is not None:
            unsubscribe()
