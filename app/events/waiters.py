"""This process's waiters at run time: the hub, what feeds it signals, and its re-check.

Created by the lifespan (app/main.py) and found on `app.state.waiters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette.sse import AppStatus

from app.config import Settings
from app.errors import database_error_fields
from app.events import changes, repository
from app.events.hub import ChangeHub
from app.events.listener import ChangeListener
from app.events.sequence import sequence

log = structlog.get_logger(__name__)

LISTENER_START_SECONDS = 5
SHUTDOWN_POLL_SECONDS = 0.2


class Waiters:
    """The hub of this process's waiters, fed by change signals and a periodic re-check."""

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.hub = ChangeHub(settings.max_waiters)
        self.listener: ChangeListener | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Listen for change signals and start the re-check.

        On PostgreSQL, waits (briefly) for the listening connection, so that a process that
        answers is already listening; without it, waiters rely on the re-check until it comes.
        """
        if self.settings.database_url.startswith("postgresql"):
            self.listener = ChangeListener(
                self.settings.database_url,
                changes.CHANNEL,
                on_change=self.hub.publish,
                on_connected=self.hub.wake_all,
                keepalive_seconds=self.settings.wait_recheck_seconds,
            )
            self.listener.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.listener.connected.wait(), LISTENER_START_SECONDS)
        else:
            self._unsubscribe = changes.subscribe(self.hub.publish)
        self._tasks = [
            asyncio.create_task(self._recheck_forever(), name="waiters-recheck"),
            asyncio.create_task(self._close_on_shutdown(), name="waiters-shutdown"),
        ]

    async def stop(self) -> None:
        """Answer every waiter now, stop listening and re-checking."""
        self.hub.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.listener is not None:
            await self.listener.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _close_on_shutdown(self) -> None:
        # uvicorn waits for open requests before the lifespan ends: on SIGTERM (which
        # sse-starlette notes for its streams) waiters answer at once instead of holding it up.
        while True:  # a flag set from uvicorn's signal handler: there is no event to await
            if AppStatus.should_exit:
                break
            await asyncio.sleep(SHUTDOWN_POLL_SECONDS)
        log.info("waiters_released", waiting=self.hub.waiting)
        self.hub.close()

    async def _recheck_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.settings.wait_recheck_seconds)
            try:
                await self.hub.recheck(self._sequences)
            except Exception as exc:  # the database is away: the next round tries again
                if not failing:
                    log.warning("waiters_recheck_failed", **database_error_fields(exc))
                failing = True
            else:
                failing = False

    async def _sequences(self, job_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
        async with self.sessions() as session:
            rows = await repository.job_states(session, job_ids)
        return {row.id: sequence(row) for row in rows}


async def get_waiters(request: Request) -> Waiters:
    """This process's waiters."""
    waiters: Waiters = request.app.state.waiters
    return waiters


WaitersDep = Annotated[Waiters, Depends(get_waiters)]
