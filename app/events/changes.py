"""Change signals, sent from inside the transaction that changes a job.

On PostgreSQL, `pg_notify` in that transaction: PostgreSQL delivers it to every listening
process (app/events/listener.py) when, and only if, the transaction commits. On SQLite (one
process) the job ids are kept on the session and handed to this process's subscribers after its
commit; a rollback drops them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.events import repository

log = structlog.get_logger(__name__)

CHANNEL = "evolink_jobs_changes"
_PENDING_KEY = "evolink_jobs_changed_jobs"

Subscriber = Callable[[uuid.UUID], None]
_subscribers: set[Subscriber] = set()


async def announce(session: AsyncSession, job_id: uuid.UUID) -> None:
    """Tell waiters, once the caller commits, that `job_id` changed."""
    if session.get_bind().dialect.name == "postgresql":
        await repository.notify(session, CHANNEL, str(job_id))
    else:
        await session.connection()  # inside a transaction, so that its end decides
        session.sync_session.info.setdefault(_PENDING_KEY, set()).add(job_id)


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    """Call `subscriber(job_id)` after each commit in this process that changed a job (SQLite);
    the function that unsubscribes it."""
    _subscribers.add(subscriber)
    return lambda: _subscribers.discard(subscriber)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    changed: set[uuid.UUID] | None = session.info.pop(_PENDING_KEY, None)
    for job_id in changed or ():
        for subscriber in list(_subscribers):
            try:
                subscriber(job_id)
            except Exception:  # a waiter's trouble must never undo or break the commit
                log.exception("change_subscriber_failed", job_id=str(job_id))


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: Any) -> None:
    # After a commit the ids are gone already; after a rollback they must not linger into the
    # session's next transaction.
    if transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)
