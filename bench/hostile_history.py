"""What a flood of callbacks costs a job's history: 500 callbacks of ~64 KiB to a finished job.

Run with `.venv/bin/python bench/hostile_history.py` (SQLite). Prints the bytes stored in event
bodies, the size of one default page of `GET /v1/jobs/{id}/events`, and of all pages together.
Before the bodies were capped and the history paged, the one answer was 32.8 MB.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings
from app.jobs.models import JobEvent
from app.logs import configure_logging
from app.main import create_app
from app.migrations import upgrade

KEY = "bench-key-0123456789"
TASK = "task-unified-1757156493-imcg5zqt"
CALLBACKS = 500


def evolink(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"id": TASK, "status": "pending", "progress": 0})


async def main(url: str) -> None:
    settings = Settings(
        _env_file=None,
        database_url=url,
        evolink_api_key="sk-evo-bench",
        evolink_base_url="https://evolink.bench",
        public_base_url="https://jobs.bench",
        callback_secret="bench-callback-secret-of-32-bytes-or-more",
        api_keys=f"bench:{KEY}",
        verify_callbacks=False,
        archive_url="off",
    )
    app = create_app(settings, run_worker=False, evolink_transport=httpx.MockTransport(evolink))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as api:
            job = (await api.post("/v1/jobs", json={"prompt": "a flood"})).json()
            signer = app.state.signer
            path = httpx.URL(signer.url_for(uuid.UUID(job["id"]))).path
            body = {"id": TASK, "status": "completed", "results": ["https://cdn.bench/0.png"]}
            body["padding"] = "x" * (64 * 1024 - len(json.dumps(body)) - 20)
            for _ in range(CALLBACKS):
                await api.post(path, json=body)
            first = await api.get(f"/v1/jobs/{job['id']}/events")
            total, pages, cursor = len(first.content), 1, first.json()["next_cursor"]
            while cursor:
                page = await api.get(f"/v1/jobs/{job['id']}/events", params={"cursor": cursor})
                total, pages, cursor = (
                    total + len(page.content),
                    pages + 1,
                    page.json()["next_cursor"],
                )
        async with app.state.session_factory() as session:
            stored = await session.scalar(select(func.sum(func.length(JobEvent.body))))
            events = await session.scalar(select(func.count()).select_from(JobEvent))
    print(f"{CALLBACKS} callbacks of {len(json.dumps(body))} bytes to a finished job:")
    print(f"  events stored: {events}, body bytes stored: {stored}")
    print(f"  first page (default limit): {len(first.content)} bytes")
    print(f"  all {pages} pages: {total} bytes")


if __name__ == "__main__":
    database = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/history.db"
    upgrade(database)
    configure_logging("WARNING", open(os.devnull, "w"))  # noqa: SIM115 - for the whole run
    asyncio.run(main(database))
