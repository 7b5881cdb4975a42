"""Bench rows written with SQL: `generate_series` on PostgreSQL (millions in minutes), a recursive
CTE on SQLite. Job ids are md5(group || i) as UUIDs, so the bench can name any of them."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

CALLER = "bench"
MODEL = "gpt-4o-image"
RESULT = "https://results.bench.invalid/image.png"

_COLUMNS = (
    "id, caller, status, progress, model, prompt, size, n, image_urls, evolink_task_id, results,"
    " created_at, updated_at, completed_at, final_source, submit_state, submit_attempts,"
    " poll_attempts, next_attempt_at"
)
# One row per i: a job `status` (processing: due nothing, waiting for its callback; completed:
# finished `i` seconds ago), created `i` seconds before the start.
_PG = f"""
INSERT INTO jobs ({_COLUMNS})
SELECT md5(CAST(:group AS text) || i)::uuid, :caller, :status,
    CASE WHEN CAST(:final AS boolean) THEN 100 ELSE 40 END, :model,
    'a benchmark fox ' || i, '1:1', 1, '[]', 'task-unified-' || CAST(:group AS text) || '-' || i,
    CAST(CASE WHEN CAST(:final AS boolean) THEN CAST(:results AS text) ELSE '[]' END AS json),
    now() - make_interval(secs => i), now() - make_interval(secs => i),
    CASE WHEN CAST(:final AS boolean) THEN now() - make_interval(secs => i) END,
    CASE WHEN CAST(:final AS boolean) THEN 'callback' END, 'done', 1, 0, NULL
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS i
"""  # noqa: S608 - constant columns
_PG_EVENTS = """
INSERT INTO job_events (job_id, received_at, source, status, outcome, body)
SELECT md5(CAST(:group AS text) || i)::uuid, now() - make_interval(secs => i), 'callback',
    'completed', 'applied', '{"status": "completed"}'
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS i
"""
_SQLITE = f"""
WITH RECURSIVE s(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM s WHERE i < :last)
INSERT INTO jobs ({_COLUMNS})
SELECT lower(hex(randomblob(16))), :caller, :status, CASE WHEN :final THEN 100 ELSE 40 END, :model,
    'a benchmark fox ' || i, '1:1', 1, '[]', 'task-unified-' || :group || '-' || i,
    CASE WHEN :final THEN :results ELSE '[]' END,
    datetime('now', '-' || i || ' seconds'), datetime('now', '-' || i || ' seconds'),
    CASE WHEN :final THEN datetime('now', '-' || i || ' seconds') END,
    CASE WHEN :final THEN 'callback' END, 'done', 1, 0, NULL
FROM s
"""  # noqa: S608 - constant columns


def job_id(group: str, i: int) -> uuid.UUID:
    """The id of the `i`-th job of `group` (PostgreSQL: md5(group || i)::uuid)."""
    return uuid.UUID(hashlib.md5(f"{group}{i}".encode()).hexdigest())  # noqa: S324 - an id


def task_id(group: str, i: int) -> str:
    """The EvoLink task the `i`-th job of `group` is bound to."""
    return f"task-unified-{group}-{i}"


async def seed_jobs(
    engine: AsyncEngine,
    group: str,
    count: int,
    *,
    final: bool,
    events: bool = False,
    chunk: int = 1_000_000,
    start: int = 1,
) -> None:
    """Insert jobs start..count of `group` (and one event each), a chunk per transaction."""
    postgres = engine.dialect.name == "postgresql"
    for first in range(start, count + 1, chunk):
        params = {
            "group": group,
            "caller": CALLER,
            "status": "completed" if final else "processing",
            "final": final,
            "model": MODEL,
            "results": f'["{RESULT}"]',
            "first": first,
            "last": min(count, first + chunk - 1),
        }
        async with engine.begin() as connection:
            await connection.execute(text(_PG if postgres else _SQLITE), params)
            if events and postgres:
                await connection.execute(text(_PG_EVENTS), params)


async def sqlite_ids(engine: AsyncEngine, group: str) -> dict[int, uuid.UUID]:
    """SQLite's random ids of a group's jobs, by i (it has no md5)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT id, evolink_task_id FROM jobs WHERE evolink_task_id LIKE :p"),
            {"p": f"task-unified-{group}-%"},
        )
        return {int(task.rsplit("-", 1)[1]): uuid.UUID(str(id_)) for id_, task in rows}
