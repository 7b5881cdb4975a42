"""Fetching one result image from EvoLink's link to a local file, safely.

Streamed to disk (never a whole image in memory), capped at ARCHIVE_MAX_BYTES, through the
connect-time address guard (app/net/guard.py) on every hop of a redirect, and checked to be an
image by its bytes. Each failure says whether trying again later could help.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import anyio
import httpx
from PIL import Image, UnidentifiedImageError

from app.net.guard import AddressPolicy, guarded_transport, refused

MAX_REDIRECTS = 5
# What a result image may be, recognised by its first bytes (Pillow then reads the whole file).
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
}
CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
THUMBNAIL_SIDE = 256
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class DownloadFailed(Exception):
    """The image could not be archived from its source; `retryable` if later might work."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Downloaded:
    """A verified image on local disk."""

    path: Path
    size: int
    sha256: str
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class Thumbnail:
    """A WebP thumbnail on local disk."""

    path: Path
    size: int
    sha256: str


def build_source_client(*, allow_private: bool, timeout: float) -> httpx.AsyncClient:
    """The HTTP client for image sources: guarded, no proxies from the environment, no
    automatic redirects (the downloader follows them itself, checking each hop's scheme)."""
    return httpx.AsyncClient(
        transport=guarded_transport(AddressPolicy(allow_private=allow_private)),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": "evolink-jobs-archive"},
    )


class Downloader:
    """Fetches a source URL into a local file and checks that it is an image."""

    def __init__(self, http: httpx.AsyncClient, *, max_bytes: int, timeout: float) -> None:
        self.http = http
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def fetch(self, url: str, into: Path) -> Downloaded:
        """Download `url` (following up to MAX_REDIRECTS redirects) into the file `into`."""
        try:
            async with asyncio.timeout(self.timeout):
                size, digest = await self._fetch(url, into)
        except TimeoutError as exc:
            raise DownloadFailed(
                "source_timeout", f"no complete answer within {self.timeout:g} s", retryable=True
            ) from exc
        content_type, width, height = await asyncio.to_thread(inspect_image, into)
        return Downloaded(into, size, digest, content_type, width, height)

    async def _fetch(self, url: str, into: Path) -> tuple[int, str]:
        for _hop in range(MAX_REDIRECTS + 1):
            _check_scheme(url)
            try:
                async with self.http.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(str(response.url), response.headers["location"])
                        continue
                    self._check_answer(response)
                    return await self._save(response, into)
            except httpx.HTTPError as exc:
                if refused(exc):
                    raise DownloadFailed("address_refused", str(exc), retryable=False) from exc
                message = str(exc) or type(exc).__name__
                raise DownloadFailed("source_unreachable", message, retryable=True) from exc
        raise DownloadFailed("too_many_redirects", f"more than {MAX_REDIRECTS}", retryable=False)

    def _check_answer(self, response: httpx.Response) -> None:
        status = response.status_code
        if status >= 500 or status in RETRYABLE_STATUSES:
            raise DownloadFailed("source_error", f"the source answered {status}", retryable=True)
        if status != 200:
            raise DownloadFailed(
                "source_rejected", f"the source answered {status}", retryable=False
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large()

    async def _save(self, response: httpx.Response, into: Path) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        async with await anyio.open_file(into, "wb") as file:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large()
                digest.update(chunk)
                await file.write(chunk)
        return size, digest.hexdigest()

    def _too_large(self) -> DownloadFailed:
        return DownloadFailed(
            "too_large", f"larger than ARCHIVE_MAX_BYTES ({self.max_bytes})", retryable=False
        )


def _check_scheme(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadFailed("unsupported_url", "only http(s) URLs are fetched", retryable=False)


def inspect_image(path: Path) -> tuple[str, int, int]:
    """The content type, width and height of the image at `path`; DownloadFailed if the bytes
    are not a complete PNG, JPEG, GIF or WebP image."""
    with path.open("rb") as file:
        head = file.read(16)
    known = next((f for magic, f in SIGNATURES.items() if head.startswith(magic)), None)
    if known is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        known = "WEBP"
    if known is None:
        raise DownloadFailed(
            "not_an_image", "the body is not a PNG, JPEG, GIF or WebP image", retryable=False
        )
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
            image.load()  # decodes it all: a truncated image fails here
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        raise DownloadFailed("not_an_image", f"unreadable image: {exc}", retryable=False) from exc
    return CONTENT_TYPES.get(fmt or known, f"image/{known.lower()}"), width, height


def make_thumbnail(source: Path, into: Path) -> Thumbnail:
    """A WebP of the image at `source`, its longest side at most THUMBNAIL_SIDE pixels."""
    with Image.open(source) as opened:
        opened.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG: decode at a smaller scale
        image: Image.Image = opened
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        if image.mode not in ("RGB", "RGBA"):
            alpha = "A" in image.getbands() or "transparency" in image.info
            image = image.convert("RGBA" if alpha else "RGB")
        image.save(into, format="WEBP", quality=80)
    digest = hashlib.sha256()
    with into.open("rb") as file:
        while chunk := file.read(65536):
            digest.update(chunk)
    return Thumbnail(into, into.stat().st_size, digest.hexdigest())
