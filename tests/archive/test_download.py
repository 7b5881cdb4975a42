"""The downloader against a real HTTP server: hangs, oversized bodies, HTML posing as PNG,
redirects to our own network. No database involved."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from app.archive.download import Downloader, DownloadFailed, build_source_client
from app.net.guard import AddressPolicy, guarded_transport
from tests.support.http_server import ScriptedServer, serving

MB = 1_000_000


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 16), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    app = ScriptedServer()

    async def hang(_request: Request) -> Response:
        await asyncio.sleep(3)
        return Response(b"")

    async def huge(_request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield png_bytes()
            for _ in range(60):
                yield b"\0" * MB

        return StreamingResponse(chunks(), media_type="image/png")  # no Content-Length

    async def declared_huge(_request: Request) -> Response:
        return Response(b"x", headers={"Content-Length": str(60 * MB)}, media_type="image/png")

    async def html(_request: Request) -> Response:
        return Response(b"<html><body>not an image</body></html>", media_type="image/png")

    async def truncated(_request: Request) -> Response:
        return Response(png_bytes()[:40], media_type="image/png")

    async def good(_request: Request) -> Response:
        return Response(png_bytes(), media_type="application/octet-stream")

    async def to_loopback(_request: Request) -> Response:
        return RedirectResponse(f"http://127.0.0.1:{app.port}/good.png")

    async def to_metadata(_request: Request) -> Response:
        return RedirectResponse("http://169.254.169.254/latest/meta-data/")

    async def to_file(_request: Request) -> Response:
        return RedirectResponse("file:///etc/passwd")

    for path, handler in {
        "/hang.png": hang, "/huge.png": huge, "/declared.png": declared_huge,
        "/html.png": html, "/truncated.png": truncated, "/good.png": good,
        "/loopback": to_loopback, "/metadata": to_metadata, "/file": to_file,
    }.items():  # fmt: skip
        app.route(path, handler)
    with serving(app):
        yield app


def downloader(
    *, allow_private: bool = True, max_bytes: int = 50 * MB, timeout: float = 0.5
) -> Downloader:
    return Downloader(
        build_source_client(allow_private=allow_private, timeout=timeout),
        max_bytes=max_bytes,
        timeout=timeout,
    )


def as_public(*hosts: str) -> Downloader:
    """A downloader that treats `hosts` as public (as EvoLink's CDN is), and nothing else."""
    http = httpx.AsyncClient(
        transport=guarded_transport(AddressPolicy.from_lists(allow=hosts)),
        trust_env=False,
        follow_redirects=False,
        timeout=2,
    )
    return Downloader(http, max_bytes=50 * MB, timeout=2)


async def fetch_fails(d: Downloader, url: str, into: Path) -> DownloadFailed:
    async with d.http:
        with pytest.raises(DownloadFailed) as caught:
            await d.fetch(url, into)
    return caught.value


async def test_a_good_image_whatever_its_content_type(
    server: ScriptedServer, tmp_path: Path
) -> None:
    async with (d := downloader()).http:
        got = await d.fetch(f"{server.url}/good.png", tmp_path / "x")
    assert (got.content_type, got.width, got.height, got.size) == (
        "image/png", 32, 16, len(png_bytes()),
    )  # fmt: skip


async def test_a_hanging_source_times_out_and_is_retryable(
    server: ScriptedServer, tmp_path: Path
) -> None:
    failure = await fetch_fails(downloader(), f"{server.url}/hang.png", tmp_path / "x")
    assert (failure.code, failure.retryable) == ("source_timeout", True)


async def test_sixty_megabytes_stop_at_the_limit(server: ScriptedServer, tmp_path: Path) -> None:
    into = tmp_path / "x"
    # 50 MB take longer than the hang test's half second on a busy machine: the cap must win.
    failure = await fetch_fails(downloader(timeout=60), f"{server.url}/huge.png", into)
    assert (failure.code, failure.retryable) == ("too_large", False)
    assert into.stat().st_size <= 50 * MB  # stopped streaming at the cap
    declared = await fetch_fails(downloader(), f"{server.url}/declared.png", tmp_path / "y")
    assert declared.code == "too_large"


@pytest.mark.parametrize("path", ["/html.png", "/truncated.png"])
async def test_bytes_that_are_not_an_image_are_refused(
    server: ScriptedServer, tmp_path: Path, path: str
) -> None:
    failure = await fetch_fails(downloader(), f"{server.url}{path}", tmp_path / "x")
    assert (failure.code, failure.retryable) == ("not_an_image", False)


async def test_loopback_source_refused_without_the_allow_flag(
    server: ScriptedServer, tmp_path: Path
) -> None:
    hits = server.hits["/good.png"]
    d = downloader(allow_private=False)
    failure = await fetch_fails(d, f"{server.url}/good.png", tmp_path / "x")
    assert (failure.code, failure.retryable) == ("address_refused", False)
    assert server.hits["/good.png"] == hits


@pytest.mark.parametrize("path", ["/loopback", "/metadata"])
async def test_redirects_to_our_network_are_refused(
    server: ScriptedServer, tmp_path: Path, path: str
) -> None:
    # The source itself passes as public; where it redirects to does not.
    hits = server.hits["/good.png"]
    failure = await fetch_fails(
        as_public("localhost"), f"http://localhost:{server.port}{path}", tmp_path / "x"
    )
    assert (failure.code, failure.retryable) == ("address_refused", False)
    assert server.hits["/good.png"] == hits


async def test_only_http_urls_are_fetched(server: ScriptedServer, tmp_path: Path) -> None:
    assert (await fetch_fails(downloader(), "file:///etc/passwd", tmp_path / "x")).code == (
        "unsupported_url"
    )
    redirected = await fetch_fails(downloader(), f"{server.url}/file", tmp_path / "y")
    assert redirected.code == "unsupported_url"
