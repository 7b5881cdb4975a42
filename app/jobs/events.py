"""A job's history: recording events with a bounded cost per job, and reading it a page at a time.

Every delivery is recorded, but a body that changed nothing (`deferred`, `duplicate`, `stale`,
`rejected`) is kept only for the first MAX_STORED_BODIES such events of a job: whoever holds a
callback URL can post the same 64 KiB thousands of times, and the history must stay cheap to keep
and to read. Past the cap the event is stored without its body and says so; the metric
`evolink_jobs_event_bodies_dropped_total` counts them.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidCursor
from app.jobs import repository
from app.jobs import service as jobs_service
from app.jobs.models import EventOutcome, JobEvent
from app.jobs.schemas import JobEventRead
from app.metrics import EVENT_BODIES_DROPPED
from app.safe_json import renderable, storable_text

MAX_STORED_BODIES = 20
# Outcomes whose bodies are capped: they changed nothing, so anyone can repeat them at will.
CAPPED_OUTCOMES = (
    EventOutcome.DEFERRED,
    EventOutcome.DUPLICATE,
    EventOutcome.STALE,
    EventOutcome.REJECTED,
)
BODY_DROPPED = f"body not kept: the job already keeps {MAX_STORED_BODIES} bodies of such events"
_CURSOR_PREFIX = "ev:"


async def record(session: AsyncSession, event: JobEvent) -> None:
    """Add one event to its job's history (the caller commits), its body stored within the cap."""
    if event.body is not None:
        event.body = storable_text(event.body)
        if event.outcome in CAPPED_OUTCOMES:
            # Serialise the count per job (PostgreSQL; SQLite writes one at a time anyway), so
            # concurrent deliveries cannot overshoot the cap together.
            await repository.lock_job(session, event.job_id)
            kept = await repository.count_event_bodies(session, event.job_id, CAPPED_OUTCOMES)
            if kept >= MAX_STORED_BODIES:
                event.body = None
                event.detail = f"{event.detail}; {BODY_DROPPED}" if event.detail else BODY_DROPPED
                EVENT_BODIES_DROPPED.inc()
    await repository.add_event(session, event)


async def list_page(
    session: AsyncSession, caller: str, job_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[Sequence[JobEvent], str | None]:
    """One page of the caller's job's history, oldest first, and the next page's cursor."""
    await jobs_service.get_job(session, caller, job_id)
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.list_events(session, job_id, limit=limit + 1, after_id=after)
    page = rows[:limit]
    return page, encode_cursor(page[-1].id) if len(rows) > limit else None


def to_read(event: JobEvent) -> JobEventRead:
    """The API's view of an event; a body that cannot render as JSON is shown as its text."""
    return JobEventRead(
        id=event.id,
        received_at=event.received_at,
        source=event.source,
        status=event.status,
        outcome=event.outcome,
        detail=event.detail,
        body=renderable(event.body) if event.body is not None else None,
    )


def encode_cursor(event_id: int) -> str:
    """The cursor that continues after this event."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{event_id}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    """The event id a cursor stands for; InvalidCursor if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("cursor is not one this API returned") from exc
    number = raw.removeprefix(_CURSOR_PREFIX)
    if not raw.startswith(_CURSOR_PREFIX) or not number.isascii() or not number.isdigit():
        raise InvalidCursor("cursor is not one this API returned")
    if len(number) > 18:  # past a BIGINT
        raise InvalidCursor("cursor is not one this API returned")
    return int(number)
