"""Wake this process's delivery worker when a transaction that wrote an event commits, so that
the event leaves at once rather than at the next tick (other replicas find it at theirs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = structlog.get_logger(__name__)

_WRITTEN_KEY = "evolink_jobs_notification_written"
_wakers: set[Callable[[], None]] = set()


def written(session: AsyncSession) -> None:
    """Note that this transaction wrote an event (the caller has flushed it)."""
    session.sync_session.info[_WRITTEN_KEY] = True


def subscribe(waker: Callable[[], None]) -> Callable[[], None]:
    """Call `waker()` after each commit in this process that wrote an event; the function that
    unsubscribes it."""
    _wakers.add(waker)
    return lambda: _wakers.discard(waker)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WRITTEN_KEY, False):
        for waker in list(_wakers):
            try:
                waker()
            except Exception:  # waking is an optimisation: never let it break the commit
                log.exception("notification_wake_failed")


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # a rollback: nothing was written after all
        session.info.pop(_WRITTEN_KEY, None)
