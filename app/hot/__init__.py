"""The hot paths: the busiest requests' common case, answered over asyncpg without FastAPI.

Lookups, listings and EvoLink's callbacks are most of the traffic. `HotPaths` (middleware,
inside the request-id, limits and error middleware) answers their common case itself: a known
key and an existing job or a well-formed page request, or a callback that changes its job. It
runs the repository's own statements, compiled once (app/hot/statements.py), on a small asyncpg
pool of its own; a callback under VERIFY_CALLBACKS=false goes through the route's own service.
Everything else (an unknown key, a missing job, an unusual query, `Prefer: wait`, a repeated
callback) goes on to the FastAPI app, which answers as it always has: the hot paths change
speed, never answers. After a database error they step aside for a few seconds. PostgreSQL
only; `HOT_PATH_POOL_SIZE=0` turns them off.
"""
