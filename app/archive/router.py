"""Archived images over HTTP: HTTP only. Parse, call the service, answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from app.archive import service as archive_service
from app.archive.store import ArchiveStore, ArchiveUnavailable, StoredObjectMissing
from app.auth.dependencies import CallerDep
from app.db import SessionDep
from app.dependencies import SettingsDep
from app.openapi import problem_responses

router = APIRouter(prefix="/v1/jobs", tags=["images"])

# Archived bytes never change (the ETag is their SHA-256); callers may keep them a day.
CACHE_CONTROL = "private, max-age=86400"
MAX_INDEX = 15


def _responses(content_type: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "The image, streamed.",
            "content": {content_type: {"schema": {"type": "string", "format": "binary"}}},
            "headers": {
                "ETag": {
                    "description": "The SHA-256 of the bytes, quoted (strong).",
                    "schema": {"type": "string"},
                },
                "Cache-Control": {"description": CACHE_CONTROL, "schema": {"type": "string"}},
            },
        },
        304: {"description": "`If-None-Match` matched: the copy the caller has is current."},
        307: {
            "description": "With ARCHIVE_PRESIGNED_REDIRECTS on S3: a short-lived presigned URL "
            "of the object (no credentials needed to follow it).",
        },
        **problem_responses(401, 404, 410, 422),
    }


IndexPath = Annotated[int, Path(ge=0, le=MAX_INDEX, description="Position in the job's `results`.")]
IfNoneMatch = Annotated[
    str | None,
    Header(alias="If-None-Match", description="An ETag from an earlier answer: 304 if unchanged."),
]


@router.get(
    "/{job_id}/images/{index}",
    response_class=Response,
    responses=_responses("image/*"),
    summary="An archived result image",
)
async def get_image(
    job_id: uuid.UUID,
    index: IndexPath,
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The job's image `index`, from the archive (404 `image_not_archived` until it is stored,
    410 `image_expired` after retention deleted it)."""
    image = await archive_service.image_for_caller(session, caller, job_id, index)
    key, content_type, sha256 = image.object_key, image.content_type, image.sha256
    await session.rollback()  # nothing to write: hand the connection back before streaming
    assert key and content_type and sha256
    return await serve_stored(request, settings, key, content_type, sha256, if_none_match)


@router.get(
    "/{job_id}/images/{index}/thumbnail",
    response_class=Response,
    responses=_responses("image/webp"),
    summary="An archived image's thumbnail (WebP, longest side 256 px)",
)
async def get_thumbnail(
    job_id: uuid.UUID,
    index: IndexPath,
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The thumbnail of the job's image `index`; the same rules as the image."""
    image = await archive_service.image_for_caller(session, caller, job_id, index)
    key, sha256 = image.thumbnail_key, image.thumbnail_sha256
    await session.rollback()
    assert key and sha256
    return await serve_stored(request, settings, key, "image/webp", sha256, if_none_match)


async def serve_stored(
    request: Request,
    settings: SettingsDep,
    key: str,
    content_type: str,
    sha256: str,
    if_none_match: str | None,
) -> Response:
    """Stream an archived object (or 304 on a matching ETag, or 307 to a presigned URL);
    the web console serves images through this too."""
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if if_none_match is not None and _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    store: ArchiveStore | None = request.app.state.archive_store
    if store is None:
        raise ArchiveUnavailable("archiving is off (ARCHIVE_URL=off)")
    if settings.archive_presigned_redirects and store.can_presign:
        url = await _presign(store, key, settings.archive_presign_seconds)
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        stored = await store.open(key)
    except StoredObjectMissing as exc:
        raise archive_service.ImageExpired("the archived object is gone") from exc
    except Exception as exc:
        raise ArchiveUnavailable("the archive store cannot be read right now") from exc
    headers["Content-Length"] = str(stored.size)
    return StreamingResponse(stored.chunks, media_type=content_type, headers=headers)


async def _presign(store: ArchiveStore, key: str, seconds: int) -> str:
    try:
        return await store.presigned_url(key, seconds)
    except Exception as exc:
        raise ArchiveUnavailable("cannot presign a URL right now") from exc


def _matches(if_none_match: str, etag: str) -> bool:
    # RFC 9110: weak comparison for If-None-Match; "*" matches any current representation.
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags
