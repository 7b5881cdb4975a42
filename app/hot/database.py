"""The hot paths' own asyncpg pool, which steps aside for a while after any database error."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import DATABASE_TIMEOUT_SECONDS, PING_AFTER_IDLE_SECONDS

log = structlog.get_logger(__name__)

DRIVER_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

STEP_ASIDE_SECONDS = 5.0
"""After a database error the hot paths leave every request to the FastAPI app this long: during
an outage requests meet the database's timeouts once, not twice, and after a restart the app's
pool (which pings connections idle for a while) serves until the hot pool's dead connections
are gone."""


class HotPathFailed(Exception):
    """A hot path met a database error (`error`) before answering."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(type(error).__name__)
        self.error = error


class HotDatabase:
    """A small asyncpg pool, with JSON decoded as the ORM does, and a breaker."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._aside_until = 0.0
        self._used_at: dict[int, float] = {}  # by server process id

    @classmethod
    async def open(cls, settings: Settings) -> HotDatabase | None:
        """The pool for PostgreSQL with HOT_PATH_POOL_SIZE > 0; None otherwise."""
        url = make_url(settings.database_url)
        if settings.hot_path_pool_size == 0 or url.get_backend_name() != "postgresql":
            return None
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=settings.hot_path_pool_size,
            timeout=DATABASE_TIMEOUT_SECONDS,
            init=_decode_json,
            reset=_keep_session,
        )
        return cls(pool)

    @property
    def available(self) -> bool:
        """False for a while after a database error."""
        return time.monotonic() >= self._aside_until

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection that is alive; a database error raises HotPathFailed."""
        try:
            connection = await self._alive_connection()
        except DRIVER_ERRORS as exc:
            raise HotPathFailed(exc) from exc
        pid = connection.get_server_pid()
        try:
            yield connection
        except DRIVER_ERRORS as exc:
            raise HotPathFailed(exc) from exc
        finally:
            self._used_at[pid] = time.monotonic()
            await self.pool.release(connection)

    async def _alive_connection(self) -> asyncpg.Connection:
        # A connection idle for a while may have been closed by the server (a restart, a
        # terminated backend, a dropped database): it is pinged first, and one that fails is
        # replaced, once, as the app's own pool does.
        for attempt in range(2):
            connection = await self.pool.acquire(timeout=DATABASE_TIMEOUT_SECONDS)
            idle = time.monotonic() - self._used_at.get(connection.get_server_pid(), 0.0)
            if idle < PING_AFTER_IDLE_SECONDS:
                return connection
            try:
                await connection.execute("SELECT 1")
                return connection
            except DRIVER_ERRORS:
                connection.terminate()
                await self.pool.release(connection)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def step_aside(self, error: BaseException) -> None:
        """Leave every request to the FastAPI app for a while, after `error`."""
        self._aside_until = time.monotonic() + STEP_ASIDE_SECONDS
        log.warning("hot_paths_stepped_aside", error=type(error).__name__)

    async def close(self) -> None:
        await self.pool.close()


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool beyond what asyncpg always does (roll
    back an open transaction): nothing. The hot paths change no session state (no SET, LISTEN,
    advisory lock or cursor), so asyncpg's default reset (`RESET ALL; UNLISTEN *; …`) would
    cost a round trip per request for nothing."""


async def _decode_json(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
