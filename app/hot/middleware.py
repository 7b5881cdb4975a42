"""`HotPaths`: the middleware that answers the hot paths' common case, or passes the request on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.callbacks import router as callbacks_router
from app.errors import database_unavailable
from app.hot.callbacks import answer_callback, callback_of
from app.hot.creating import answer_create, takes_create
from app.hot.database import HotDatabase, HotPathFailed
from app.hot.listing import answer_listing, takes_listing
from app.hot.lookup import answer_lookup, job_id_of
from app.jobs import router as jobs_router
from app.metrics import HOT_PATHS

Answer = Callable[[HotDatabase, Scope, Receive, Send], Awaitable[Receive | None]]


def route_of(router: APIRouter, method: str, path: str) -> APIRoute:
    """The route that logs and metrics name a hot request by, as if FastAPI had routed it."""
    return next(
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
    )


class HotPath:
    """One hot path: which requests it may take, how it answers, which FastAPI route it is.

    `answer` answers and returns None, or returns the `receive` to hand the route (the request's
    body, replayed if the hot path read it). After a database error a path that only reads hands
    the request to the route; one that `writes` answers as the route would (503 for an outage,
    500 for a bug) rather than try the work twice.
    """

    def __init__(
        self,
        name: str,
        route: APIRoute,
        takes: Callable[[Scope], object],
        answer: Answer,
        *,
        writes: bool,
    ) -> None:
        self.route = route
        self.writes = writes
        self.takes = takes
        self.answer = answer
        self.answered = HOT_PATHS.labels(path=name, outcome="answered")
        self.passed_on = HOT_PATHS.labels(path=name, outcome="passed_on")
        self.stepped_aside = HOT_PATHS.labels(path=name, outcome="stepped_aside")


LOOKUP = HotPath(
    "lookup",
    route_of(jobs_router.router, "GET", "/v1/jobs/{job_id}"),
    job_id_of,
    answer_lookup,
    writes=False,
)
LIST = HotPath(
    "list",
    route_of(jobs_router.router, "GET", "/v1/jobs"),
    takes_listing,
    answer_listing,
    writes=False,
)
CREATE = HotPath(
    "create",
    route_of(jobs_router.router, "POST", "/v1/jobs"),
    takes_create,
    answer_create,
    writes=True,
)
CALLBACK = HotPath(
    "callback",
    route_of(callbacks_router.router, "POST", "/callbacks/evolink/{job_id}/{token}"),
    callback_of,
    answer_callback,
    writes=True,
)


class HotPaths:
    """Answer what the hot paths can; anything else, and any failure of theirs, goes to `app`.

    Innermost of our middleware: a hot answer still gets its request id, its access-log line and
    its metrics (under the FastAPI route it stands in for), and the request limits.
    """

    paths = (LOOKUP, LIST, CREATE, CALLBACK)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        database: HotDatabase | None = None
        if scope["type"] == "http" and "app" in scope:
            database = getattr(scope["app"].state, "hot_database", None)
        path = None
        if database is not None:
            path = next((p for p in self.paths if p.takes(scope) is not None), None)
        if database is not None and path is not None:
            if not database.available:
                path.stepped_aside.inc()
            else:
                try:
                    passed = await path.answer(database, scope, receive, send)
                except HotPathFailed as failed:
                    database.step_aside(failed.error)
                    path.stepped_aside.inc()
                    if path.writes:
                        await self._failed(path, failed.error, scope, receive, send)
                        return
                else:
                    if passed is None:
                        path.answered.inc()
                        scope["route"] = path.route
                        return
                    path.passed_on.inc()
                    receive = passed
        await self.app(scope, receive, send)

    async def _failed(
        self, path: HotPath, error: BaseException, scope: Scope, receive: Receive, send: Send
    ) -> None:
        answer = database_unavailable(error)
        if answer is None:
            raise error  # a bug: UnexpectedErrors logs it and answers 500, as for the route
        scope["route"] = path.route
        await answer(scope, receive, send)
