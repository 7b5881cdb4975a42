"""The hot paths: the busiest requests' common case, answered over asyncpg without FastAPI.

A job lookup and EvoLink's callbacks are most of the traffic. `HotPaths` (middleware, inside the
request-id, limits and error middleware) answers their common case itself: a known key and an
existing job, or a callback that changes its job. It runs the repository's own statements,
compiled once (app/hot/statements.py), on a small asyncpg pool of its own. Everything else (an
unknown key, a missing job, `Prefer: wait`, a duplicate callback, any database error) goes on to
the FastAPI app, which answers as it always has: the hot paths change speed, never answers.
PostgreSQL only; `HOT_PATH_POOL_SIZE=0` turns them off.
"""
