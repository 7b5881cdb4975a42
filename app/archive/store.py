"""Where archived images live: a local folder or any S3-compatible bucket, through obstore.

obstore speaks both with one API (streaming multipart uploads, streamed reads, presigned URLs),
so nothing here knows which kind of store it talks to, except that only S3 can presign.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, ObjectStore, S3Store

from app.config import Settings
from app.errors import AppError

if TYPE_CHECKING:
    from obstore import Attributes
    from obstore.store import ClientConfig, RetryConfig, S3Config

READ_CHUNK_BYTES = 256 * 1024
# One store call gives up quickly when the store is down; the archive worker retries later.
STORE_TIMEOUT = timedelta(seconds=30)
STORE_RETRIES = 2


class ArchiveUnavailable(AppError):
    status, code, title = 503, "archive_unavailable", "Archive store unavailable"


class StoredObjectMissing(Exception):
    """The store has no object under that key."""


@dataclass(frozen=True)
class StoredObject:
    """An object being read: its size and its bytes, a chunk at a time."""

    size: int
    chunks: AsyncIterator[bytes]


class ArchiveStore:
    """The archive's object store (ARCHIVE_URL)."""

    def __init__(self, store: ObjectStore, url: str) -> None:
        self.store = store
        self.url = url

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveStore | None:
        """The store ARCHIVE_URL names, or None when archiving is off."""
        url = settings.archive_url
        if url == "off":
            return None
        if url.startswith("file:"):
            return cls(LocalStore(_local_path(url), mkdir=True), url)
        return cls(_s3_store(url, settings), url)

    @property
    def can_presign(self) -> bool:
        """True when the store can hand out presigned URLs (S3)."""
        return isinstance(self.store, S3Store)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Upload a local file under `key`, streamed (multipart when large)."""
        # S3 keeps the type for presigned downloads; a local folder keeps no attributes.
        attributes: Attributes | None = None
        if isinstance(self.store, S3Store):
            attributes = {"Content-Type": content_type}
        with path.open("rb") as file:
            await obstore.put_async(self.store, key, file, attributes=attributes)

    async def open(self, key: str) -> StoredObject:
        """Start reading the object under `key`; StoredObjectMissing if there is none."""
        try:
            result = await obstore.get_async(self.store, key)
        except (NotFoundError, FileNotFoundError) as exc:
            raise StoredObjectMissing(key) from exc
        return StoredObject(result.meta["size"], _chunks(result.stream(READ_CHUNK_BYTES)))

    async def delete(self, keys: list[str]) -> None:
        """Delete the objects under `keys` (missing ones are not an error)."""
        for key in keys:
            with contextlib.suppress(NotFoundError, FileNotFoundError):
                await obstore.delete_async(self.store, key)

    async def presigned_url(self, key: str, seconds: int) -> str:
        """A URL that GETs the object for `seconds`, without our credentials."""
        assert isinstance(self.store, S3Store)
        return await obstore.sign_async(self.store, "GET", key, timedelta(seconds=seconds))


async def _chunks(stream: Any) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield bytes(chunk)


def _local_path(url: str) -> Path:
    # file:///abs/path, or file:relative/path under the working directory.
    path = url.removeprefix("file://") if url.startswith("file://") else url.removeprefix("file:")
    return Path(path).resolve()


def _s3_store(url: str, settings: Settings) -> S3Store:
    # Explicit settings win; anything unset falls back to obstore's own AWS resolution
    # (session tokens, instance roles), as every AWS SDK does.
    config: S3Config = {}
    if settings.aws_access_key_id:
        config["access_key_id"] = settings.aws_access_key_id
    if settings.aws_secret_access_key:
        config["secret_access_key"] = settings.aws_secret_access_key.get_secret_value()
    if settings.aws_region:
        config["region"] = settings.aws_region
    if settings.aws_endpoint_url:
        config["endpoint"] = settings.aws_endpoint_url
    endpoint = settings.aws_endpoint_url or ""
    client_options: ClientConfig = {
        "allow_http": endpoint.startswith("http://"),
        "timeout": STORE_TIMEOUT,
        "connect_timeout": timedelta(seconds=5),
    }
    retry: RetryConfig = {
        "max_retries": STORE_RETRIES,
        "retry_timeout": STORE_TIMEOUT,
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
            "base": 2,
        },
    }
    return S3Store.from_url(url, config=config, client_options=client_options, retry_config=retry)
