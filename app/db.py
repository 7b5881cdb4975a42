"""Declarative base, engine and session factories, and the per-request session dependency."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_SECONDS = 30
DATABASE_TIMEOUT_SECONDS = 5


class Base(DeclarativeBase):
    """Base of every model; its metadata names constraints predictably for migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and transactions that really begin.

    SQL parameters are hidden from error messages: they carry callers' prompts and metadata,
    and an error's message ends up in a log line.
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, **kwargs
        )
        _make_sqlite_transactional(engine)
        return engine
    # Fail fast when PostgreSQL is unreachable rather than hold requests for asyncpg's 60 s.
    if kwargs.get("poolclass") is not NullPool:
        kwargs.setdefault("pool_timeout", DATABASE_TIMEOUT_SECONDS)
    engine = create_async_engine(url, connect_args={"timeout": DATABASE_TIMEOUT_SECONDS}, **kwargs)
    _ping_after_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: AsyncEngine) -> None:
    # pool_pre_ping costs a round trip on every checkout (a tenth of a lookup under load). A
    # connection used within the last second is alive; one idle longer (a restart may have
    # closed it) is pinged first and replaced if dead, as pool_pre_ping would.
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["returned_at"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle = time.monotonic() - record.info.get("returned_at", 0.0)
        if idle < PING_AFTER_IDLE_SECONDS:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("connection lost while idle") from exc


def _make_sqlite_transactional(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers BEGIN and ignores SAVEPOINTs; take it over, as
    # SQLAlchemy's SQLite documentation recommends. BEGIN IMMEDIATE takes the write lock up front:
    # a deferred transaction that reads and then writes fails at once ("database is locked")
    # when another connection wrote in between, instead of waiting for the busy timeout.
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, rolled back if the handler did not commit."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    async with factory() as session:
        try:
            yield session
        except BaseException:
            # The database may be why we are here; the original error is the one to report.
            with contextlib.suppress(Exception):
                await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def create_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read: on PostgreSQL in autocommit, so that a read is
    one round trip, not BEGIN, SELECT, ROLLBACK (SQLite keeps its transactions)."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per read-only request (each statement sees the latest committed data)."""
    state = request.app.state
    factory: async_sessionmaker[AsyncSession] = getattr(
        state, "read_session_factory", state.session_factory
    )
    async with factory() as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
