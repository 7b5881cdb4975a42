"""`GET /v1/jobs/{id}`, hot: a known key and one of its caller's jobs, as the jobs API shows it."""

from __future__ import annotations

import uuid

import structlog
from pydantic import TypeAdapter
from starlette.types import Receive, Scope, Send

from app.archive import repository as archive_repository
from app.archive.models import ArchiveImage, ArchiveStatus
from app.archive.schemas import image_read
from app.auth.callers import Caller, Callers
from app.hot.database import HotDatabase
from app.hot.statements import Prepared
from app.jobs import repository as jobs_repository
from app.jobs.schemas import JobRead, job_read

PREFIX = "/v1/jobs/"
UUID_CHARS = 36
JOB = Prepared.of(jobs_repository.caller_job_row())
IMAGES = Prepared.of(archive_repository.archived_images_of_job())
NO_IMAGES = (None, ArchiveStatus.OFF)
_JOB_READ = TypeAdapter(JobRead)


def job_id_of(scope: Scope) -> uuid.UUID | None:
    """The job a plain lookup asks for (no query, no `Prefer`), or None."""
    path: str = scope["path"]
    if (
        scope["method"] != "GET"
        or len(path) != len(PREFIX) + UUID_CHARS
        or not path.startswith(PREFIX)
        or scope["query_string"]
    ):
        return None
    if any(name == b"prefer" for name, _ in scope["headers"]):
        return None
    try:
        return uuid.UUID(path[len(PREFIX) :])
    except ValueError:
        return None


def caller_of(scope: Scope, callers: Callers) -> Caller | None:
    """The caller whose bearer key the request carries, or None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            return callers.authenticate(key) if scheme.lower() == "bearer" and key else None
    return None


async def answer_lookup(
    database: HotDatabase, scope: Scope, receive: Receive, send: Send
) -> Receive | None:
    """Answer a plain lookup of an existing job with a known key; else the `receive` to hand
    the route."""
    job_id = job_id_of(scope)
    if job_id is None:
        return receive
    caller = caller_of(scope, scope["app"].state.settings.callers)
    if caller is None:
        return receive
    async with database.connection() as connection:
        row = await connection.fetchrow(JOB.sql, *JOB.args(job_id=job_id, caller=caller.name))
        if row is None:
            return receive
        images = []
        if row["archive_status"] not in NO_IMAGES:
            stored = await connection.fetch(IMAGES.sql, *IMAGES.args(job_id=job_id))
            images = [image_read(ArchiveImage(**dict(image))) for image in stored]
    body = _JOB_READ.dump_json(job_read(row, images))
    structlog.contextvars.bind_contextvars(caller=caller.name)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return None
