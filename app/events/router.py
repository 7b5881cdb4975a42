"""`GET /v1/jobs/{id}/stream`: the job's changes as Server-Sent Events. HTTP only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from app.auth.dependencies import CallerDep
from app.events import service
from app.events.hub import Watch
from app.events.sequence import is_settled
from app.events.waiters import WaitersDep
from app.jobs.router import to_read
from app.openapi import problem_responses

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# A client that stops reading is dropped after this long, rather than holding its place forever.
SEND_TIMEOUT_SECONDS = 30

STREAM_EXAMPLE = (
    'id: 10000\nevent: job\ndata: {"id": "4f0c…", "status": "pending", "progress": 0, …}\n\n'
    ": ping - 2026-11-26 10:00:15.000000+00:00\n\n"
    'id: 20420\nevent: job\ndata: {"id": "4f0c…", "status": "processing", "progress": 42, …}\n\n'
)


class JobStream(EventSourceResponse):
    """The event stream, which gives its watch back however the connection ends."""

    def __init__(self, watch: Watch, content: AsyncIterator[ServerSentEvent], **kwargs: Any):
        super().__init__(content, **kwargs)
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.watch.close()


@router.get(
    "/{job_id}/stream",
    responses={
        200: {
            "description": "One `job` event (the job as `GET /v1/jobs/{id}` returns it) per "
            "change, the first being the job now; the stream ends after the job is final and "
            "its archiving has ended. Comments (`: ping`) keep idle connections open.",
            "content": {"text/event-stream": {"example": STREAM_EXAMPLE}},
        },
        204: {"description": "Last-Event-ID is the job's last event: nothing more will come."},
        **problem_responses(400, 401, 404, 422, 503),
    },
    response_class=Response,
    summary="Follow a job's changes (Server-Sent Events)",
)
async def stream_job(
    job_id: uuid.UUID,
    caller: CallerDep,
    waiters: WaitersDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this event: only newer states are sent.",
        ),
    ] = None,
) -> Response:
    """The job's status and progress as they change, until it is final."""
    after = service.parse_last_event_id(last_event_id)
    watch, first = await service.open_stream(waiters.hub, waiters.sessions, caller, job_id)
    if after is not None and after >= first.sequence and is_settled(first.job):
        watch.close()
        # 204 tells an EventSource client not to reconnect: the job has nothing more to say.
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for snapshot in service.follow(watch, waiters.sessions, caller, first, after):
            body = to_read(snapshot.job, snapshot.images).model_dump_json()
            yield ServerSentEvent(data=body, event="job", id=str(snapshot.sequence))

    return JobStream(
        watch,
        events(),
        ping=waiters.settings.stream_heartbeat_seconds,
        send_timeout=SEND_TIMEOUT_SECONDS,
    )
