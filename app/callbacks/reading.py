"""Reading a request body with a hard size limit, without buffering more than the limit."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import ClientDisconnect


class BodyTooLarge(Exception):
    """The body is over the limit."""


class BodyIncomplete(Exception):
    """The client went away before sending the whole body."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body; BodyTooLarge as soon as it passes `limit` bytes, BodyIncomplete if the
    client disconnects first."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyIncomplete from None
    return b"".join(chunks)
