"""`GET /v1/jobs`, hot: a known key and a well-formed page request, as the jobs API lists it."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import structlog
from pydantic import TypeAdapter
from starlette.types import Receive, Scope, Send

from app.archive import repository as archive_repository
from app.archive.models import ArchiveImage
from app.archive.schemas import ImageRead, image_read
from app.errors import InvalidCursor
from app.hot.database import HotDatabase
from app.hot.lookup import NO_IMAGES, caller_of
from app.hot.statements import Prepared
from app.jobs import repository as jobs_repository
from app.jobs.models import JobStatus
from app.jobs.pagination import decode_cursor, encode_cursor
from app.jobs.router import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from app.jobs.schemas import JobPage, job_read

PATH = "/v1/jobs"
MAX_CURSOR_CHARS = 512
PARAMETERS = frozenset({"limit", "status", "cursor"})
DIGITS = re.compile(r"[0-9]{1,4}")
STATUSES = frozenset(str(s) for s in JobStatus)
PAGES = {
    (status, after): Prepared.of(jobs_repository.caller_jobs_rows(status, after))
    for status in (False, True)
    for after in (False, True)
}
IMAGES = Prepared.of(archive_repository.archived_images_of_jobs())
_JOB_PAGE = TypeAdapter(JobPage)


@dataclass(frozen=True)
class PageRequest:
    """What a list request asks for, read exactly as the route reads it."""

    limit: int
    status: str | None
    after: tuple[datetime, uuid.UUID] | None


def takes_listing(scope: Scope) -> bool | None:
    """True for a list request (whether its query is one the hot path reads is decided later)."""
    return True if scope["method"] == "GET" and scope["path"] == PATH else None


def page_request(scope: Scope) -> PageRequest | None:
    """The page asked for, or None if anything in the query is unusual (repeated or unknown
    names, an invalid value): the route then answers, with its own error if there is one."""
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names) or not PARAMETERS.issuperset(names):
        return None
    query = dict(pairs)
    limit = DEFAULT_PAGE_SIZE
    if "limit" in query:
        if not DIGITS.fullmatch(query["limit"]) or not 1 <= int(query["limit"]) <= MAX_PAGE_SIZE:
            return None
        limit = int(query["limit"])
    status = query.get("status")
    if status is not None and status not in STATUSES:
        return None
    cursor = query.get("cursor")
    after = None
    if cursor:
        if len(cursor) > MAX_CURSOR_CHARS:
            return None
        try:
            after = decode_cursor(cursor)
        except InvalidCursor:
            return None
    return PageRequest(limit, status, after)


async def answer_listing(
    database: HotDatabase, scope: Scope, receive: Receive, send: Send
) -> Receive | None:
    """Answer a well-formed list request with a known key; else the `receive` to hand the
    route."""
    request = page_request(scope)
    if request is None:
        return receive
    caller = caller_of(scope, scope["app"].state.settings.callers)
    if caller is None:
        return receive
    statement = PAGES[(request.status is not None, request.after is not None)]
    values: dict[str, Any] = {"caller": caller.name, "page_size": request.limit + 1}
    if request.status is not None:
        values["status"] = request.status
    if request.after is not None:
        values["after_created_at"], values["after_id"] = request.after
    images: dict[uuid.UUID, list[ImageRead]] = defaultdict(list)
    async with database.connection() as connection:
        rows = await connection.fetch(statement.sql, *statement.args(**values))
        page = rows[: request.limit]
        archived = [row["id"] for row in page if row["archive_status"] not in NO_IMAGES]
        if archived:
            for image in await connection.fetch(IMAGES.sql, *IMAGES.args(job_ids=archived)):
                images[image["job_id"]].append(image_read(ArchiveImage(**dict(image))))
    next_cursor = None
    if len(rows) > request.limit:
        next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["id"])
    listing = JobPage(
        data=[job_read(row, images[row["id"]]) for row in page], next_cursor=next_cursor
    )
    body = _JOB_PAGE.dump_json(listing)
    structlog.contextvars.bind_contextvars(caller=caller.name)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return None
