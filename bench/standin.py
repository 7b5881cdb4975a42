"""An EvoLink stand-in that answers at once: every create is accepted, every task is completed.

Raw ASGI, so that its own cost stays far below the service's. Used by `make bench`; the
simulator (app/simulator) is the faithful stand-in, this one is only fast.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_ids = itertools.count()
# Task ids stay unique across stand-in processes (each bench path starts one): jobs keep them.
_RUN = secrets.token_hex(4)
created = 0
RESULT = "https://results.bench.invalid/image.png"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Create → pending task; get task → completed; /_count → how many creates so far."""
    global created
    if scope["type"] != "http":
        return
    while True:  # drain the body
        message = await receive()
        if not message.get("more_body"):
            break
    path: str = scope["path"]
    if scope["method"] == "POST" and path == "/v1/images/generations":
        created += 1
        body: dict[str, Any] = {
            "id": f"task-unified-standin-{_RUN}-{next(_ids)}",
            "object": "image.generation.task",
            "status": "pending",
            "progress": 0,
            "task_info": {"can_cancel": True, "estimated_time": 100},
        }
    elif scope["method"] == "GET" and path.startswith("/v1/tasks/"):
        body = {
            "id": path.rsplit("/", 1)[1],
            "object": "image.generation.task",
            "status": "completed",
            "progress": 100,
            "results": [RESULT],
        }
    elif path == "/_count":
        body = {"created": created}
    else:
        await _answer(send, 404, {"error": {"code": 404, "message": "not found"}})
        return
    await _answer(send, 200, body)


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
