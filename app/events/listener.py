"""One PostgreSQL `LISTEN` connection per process, kept alive across database outages.

The connection is asyncpg's own, outside the pool (a pooled connection is recycled and shared).
A failed keep-alive or a terminated connection starts a new one, with backoff; after each
(re)connection every waiter reads its job again, since signals sent meanwhile are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy import make_url

log = structlog.get_logger(__name__)

APPLICATION_NAME = "evolink-jobs-listener"
CONNECT_TIMEOUT_SECONDS = 5
BACKOFF_INITIAL_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 5.0
RECONNECT_DELAY_SECONDS = 1.0
# Requests and background work report a database outage as soon as they meet it; the listener
# speaks up only when one lasts, since waiters then rely on the re-check alone.
REPORT_AFTER_SECONDS = 10.0


class _Outage:
    """When the listener lost the database, and whether that was reported."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.reported = False

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if not self.reported and now - self.since >= REPORT_AFTER_SECONDS:
            log.warning("change_listener_unavailable", error_type=type(exc).__name__)
            self.reported = True

    def ended(self) -> None:
        if self.reported:
            log.info("change_listener_recovered")
        self.since, self.reported = None, False


def asyncpg_dsn(database_url: str) -> str:
    """The libpq-style DSN asyncpg takes, from our SQLAlchemy URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class ChangeListener:
    """LISTEN on `channel`; `on_change(job_id)` per notification, `on_connected()` after each
    (re)connection."""

    def __init__(
        self,
        database_url: str,
        channel: str,
        on_change: Callable[[uuid.UUID], None],
        on_connected: Callable[[], None],
        keepalive_seconds: float,
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._channel = channel
        self._on_change = on_change
        self._on_connected = on_connected
        self._keepalive = keepalive_seconds
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        """Begin listening in the background."""
        self._task = asyncio.create_task(self._run(), name="change-listener")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = BACKOFF_INITIAL_SECONDS
        outage = _Outage()
        while True:
            try:
                connection = await asyncpg.connect(
                    self._dsn,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    server_settings={"application_name": APPLICATION_NAME},
                )
            except Exception as exc:  # down, refusing, starting up: try again, never give up
                outage.failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
                continue
            try:
                await connection.add_listener(self._channel, self._notified)
                self.connected.set()
                outage.ended()
                self._on_connected()
                await self._hold(connection)
            except Exception as exc:  # the connection broke: make another, after a pause
                outage.failed(exc)
            finally:
                self.connected.clear()
                connection.terminate()
            # Not at once: a session an operator just ended (or a server beginning a smart
            # shutdown, which waits for every client) should not find us back in a moment.
            backoff = RECONNECT_DELAY_SECONDS
            await asyncio.sleep(backoff)

    async def _hold(self, connection: Any) -> None:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._keepalive)
                continue
            # A server that vanished without closing the socket is only noticed by using it.
            await connection.execute("SELECT 1", timeout=CONNECT_TIMEOUT_SECONDS)
        raise ConnectionError("the listening connection was closed")

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            log.warning("change_signal_unreadable")
            return
        self._on_change(job_id)
