"""uvicorn's HTTP protocol with two more bounds: the size of a request's head, and its pace.

uvicorn (httptools) accepts request lines and headers of any size and waits forever for a request
that arrives a byte at a time, or never arrives on an open connection. Here a head over
`MAX_REQUEST_HEADER_BYTES` is answered 431 and a head not complete within
`REQUEST_HEADER_TIMEOUT_SECONDS` of its first byte (or of the connection) closes the connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that bounds the request head's size and the time it takes to arrive."""

    max_head_bytes = 16 * 1024
    head_timeout = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # the parser's error after our own refusal says nothing new
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._refuse(431, b"Request Header Fields Too Large")
            raise ValueError("request head too large")  # stops the parser

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(408, b"Request Timeout")

    def _refuse(self, status: int, reason: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        body = b'{"status": %d, "title": "%s"}' % (status, reason)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()


def bounded_protocol(settings: Settings) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` option, with the settings' bounds."""
    return type(
        "ConfiguredHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {
            "max_head_bytes": settings.max_request_header_bytes,
            "head_timeout": settings.request_header_timeout_seconds,
        },
    )
