"""The bare reference: raw ASGI + asyncpg doing the service's essential SQL work, nothing more.

`make bench` runs it side by side with the service and divides by its figures. Each path does
what the issue names as the irreducible work:

- callback: check the HMAC token in the path, parse the JSON body, one guarded UPDATE (task
  binding, allowed statuses) and one event row, in one transaction;
- lookup: check the bearer key, one indexed read of the caller's job, serialised as JSON;
- list: check the bearer key, one indexed keyset read of 20 jobs, serialised as JSON.

Configured by BARE_DATABASE_URL (postgresql://...), BARE_CALLBACK_SECRET and BARE_API_KEY
(caller:key). Run: `uvicorn bench.bare:app`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SECRET = os.environ.get("BARE_CALLBACK_SECRET", "").encode()
CALLER, _, KEY = os.environ.get("BARE_API_KEY", "bench:bench-key").partition(":")
KEY_SHA256 = hashlib.sha256(KEY.encode()).digest()
COLUMNS = (
    "id, status, progress, model, prompt, size, n, evolink_task_id, results, error_code, "
    "error_message, metadata, created_at, updated_at, completed_at"
)
APPLY = """
UPDATE jobs SET status = 'completed', progress = 100, results = $3::json, submit_state = 'done',
    updated_at = now(), completed_at = now(), final_source = 'callback', next_attempt_at = NULL,
    evolink_task_id = $2, callback_received_at = coalesce(callback_received_at, now())
WHERE id = $1 AND (evolink_task_id IS NULL OR evolink_task_id = $2)
    AND status IN ('queued', 'pending', 'processing')
"""
EVENT = """
INSERT INTO job_events (job_id, received_at, source, status, outcome, body)
VALUES ($1, now(), 'callback', $2, $3, $4)
"""
LOOKUP = f"SELECT {COLUMNS} FROM jobs WHERE id = $1 AND caller = $2"  # noqa: S608
LIST = (
    f"SELECT {COLUMNS} FROM jobs WHERE caller = $1"  # noqa: S608
    " ORDER BY created_at DESC, id DESC LIMIT 20"
)

pool: asyncpg.Pool | None = None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Three routes, as the service has them; everything else is 404."""
    global pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                dsn = os.environ["BARE_DATABASE_URL"].replace("+asyncpg", "")
                pool = await asyncpg.create_pool(dsn, min_size=5, max_size=10)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if pool is not None:
                    await pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert pool is not None
    path: str = scope["path"]
    parts = path.strip("/").split("/")
    if path == "/healthz":
        await _answer(send, 200, {"status": "ok"})
    elif scope["method"] == "POST" and len(parts) == 4 and parts[:2] == ["callbacks", "evolink"]:
        await _callback(pool, parts[2], parts[3], await _body(receive), send)
    elif scope["method"] == "GET" and parts[:2] == ["v1", "jobs"] and len(parts) <= 3:
        if not _authorised(scope):
            await _answer(send, 401, {"code": "unauthenticated"})
        elif len(parts) == 3:
            await _lookup(pool, parts[2], send)
        else:
            await _list(pool, send)
    else:
        await _answer(send, 404, {"code": "not_found"})


async def _callback(pool: asyncpg.Pool, job: str, token: str, raw: bytes, send: Send) -> None:
    try:
        job_id = uuid.UUID(job)
    except ValueError:
        await _answer(send, 404, {"code": "not_found"})
        return
    digest = hmac.new(SECRET, job_id.bytes, hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=")
    if not hmac.compare_digest(expected, token.encode()):
        await _answer(send, 404, {"code": "not_found"})
        return
    try:
        task = json.loads(raw)
        task_id, status = str(task["id"]), str(task["status"])
    except (ValueError, KeyError, TypeError):
        await _answer(send, 400, {"code": "callback_malformed"})
        return
    async with pool.acquire() as connection, connection.transaction():
        result = await connection.execute(APPLY, job_id, task_id, json.dumps(task.get("results")))
        outcome = "applied" if result == "UPDATE 1" else "duplicate"
        await connection.execute(EVENT, job_id, status, outcome, raw.decode())
    await _answer(send, 200, {"outcome": outcome})


async def _lookup(pool: asyncpg.Pool, job: str, send: Send) -> None:
    try:
        job_id = uuid.UUID(job)
    except ValueError:
        await _answer(send, 422, {"code": "validation_failed"})
        return
    async with pool.acquire() as connection:
        row = await connection.fetchrow(LOOKUP, job_id, CALLER)
    if row is None:
        await _answer(send, 404, {"code": "job_not_found"})
    else:
        await _answer(send, 200, _job(row))


async def _list(pool: asyncpg.Pool, send: Send) -> None:
    async with pool.acquire() as connection:
        rows = await connection.fetch(LIST, CALLER)
    await _answer(send, 200, {"data": [_job(row) for row in rows], "next_cursor": None})


def _job(row: asyncpg.Record) -> dict[str, Any]:
    job = dict(row)
    for name in ("results", "metadata"):
        if isinstance(job[name], str):
            job[name] = json.loads(job[name])
    return job


def _authorised(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return hmac.compare_digest(hashlib.sha256(value[7:]).digest(), KEY_SHA256)
    return False


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body, default=_default).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
