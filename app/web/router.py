"""The web console's routes: HTTP only. Read the cookie, call the service, render.

Pages are HTML under /console; errors are HTML pages too (app/web/routing.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path as FilePath
from typing import Annotated
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, FastAPI, Form, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from app.archive.router import serve_stored
from app.db import SessionDep, utcnow
from app.dependencies import SettingsDep
from app.jobs.models import JobStatus
from app.web import devlogin
from app.web import service as web_service
from app.web import spend as web_spend
from app.web.auth import ConsoleSessionDep, CookiesDep, OptionalSessionDep
from app.web.chart import stacked_bars
from app.web.errors import CsrfRefused, DevLoginUnavailable
from app.web.routing import ConsoleRoute, render, safe_next
from app.web.sessions import (
    COOKIE_PATH,
    CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleCookies,
    tokens_match,
)

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
STATIC_DIR = FilePath(__file__).parent / "static"
MAX_INDEX = 15
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}

Text = Annotated[str | None, Query(max_length=512)]
IndexPath = Annotated[int, Path(ge=0, le=MAX_INDEX)]


def install(app: FastAPI) -> None:
    """Serve the console's pages and its static files."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")


def _set_cookie(response: Response, cookies: ConsoleCookies, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=cookies.spec.max_age,
        path=COOKIE_PATH,
        secure=cookies.spec.secure,
        httponly=True,
        samesite="strict",
    )


def _jobs_url(query: web_service.JobQuery, **extra: str) -> str:
    params = {**query.params(), **extra}
    return "/console" + (f"?{urlencode(params)}" if params else "")


def newer_url(query: web_service.JobQuery, since: str | None) -> str:
    """Where the jobs page polls for jobs newer than `since` (all matching when None)."""
    params = {**query.params(), **({"since": since} if since else {})}
    return "/console/rows" + (f"?{urlencode(params)}" if params else "")


@router.get("/sign-in")
async def sign_in_page(
    request: Request, cookies: CookiesDep, session: OptionalSessionDep, next: Text = None
) -> Response:
    """The sign-in form (or straight on, for a signed-in caller)."""
    if session is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _sign_in_form(request, cookies, safe_next(next))


def _sign_in_form(
    request: Request, cookies: ConsoleCookies, next_path: str, error: str | None = None
) -> Response:
    token = cookies.read_csrf(request.cookies.get(CSRF_COOKIE))
    fresh = None
    if token is None:
        fresh, token = cookies.issue_csrf()
    context = {"title": "Sign in", "csrf_token": token, "next": next_path, "error": error}
    response = render(request, "sign_in.html", context, 401 if error else 200)
    if fresh is not None:
        _set_cookie(response, cookies, CSRF_COOKIE, fresh)
    return response


@router.post("/sign-in")
async def sign_in(
    request: Request,
    cookies: CookiesDep,
    api_key: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    """Check the key as the API does; on success a session cookie, and on to `next`."""
    if not tokens_match(cookies.read_csrf(request.cookies.get(CSRF_COOKIE)), csrf_token):
        raise CsrfRefused("The form's security token is missing or stale: reload the page.")
    caller = cookies.callers.authenticate(api_key) if api_key else None
    if caller is None:
        log.info("console_sign_in_refused")
        return _sign_in_form(request, cookies, safe_next(next), "That API key is not known.")
    value, _ = cookies.issue_session(caller)
    log.info("console_signed_in", caller=caller.name)
    response = RedirectResponse(safe_next(next), status_code=303)
    _set_cookie(response, cookies, SESSION_COOKIE, value)
    response.delete_cookie(CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/sign-out")
async def sign_out(
    session: ConsoleSessionDep, csrf_token: Annotated[str, Form(max_length=256)] = ""
) -> Response:
    """End the session (the form must carry the session's CSRF token)."""
    if not tokens_match(session.csrf_token, csrf_token):
        raise CsrfRefused("The form's security token is missing or stale: reload the page.")
    log.info("console_signed_out", caller=session.caller.name)
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


@router.get("/dev-login")
async def dev_login(
    request: Request, cookies: CookiesDep, token: Annotated[str, Query(max_length=256)] = ""
) -> Response:
    """Dev mode only: the one-time link printed by `make dev` signs in as the dev caller."""
    login = devlogin.for_app(request.app)
    if login is None:
        raise DevLoginUnavailable("There is no one-time sign-in link outside dev mode.")
    caller = cookies.callers.get(login.caller)
    if caller is None or not login.redeem(token):
        raise DevLoginUnavailable(
            "This one-time link was used already or is not valid: sign in with the API key."
        )
    value, _ = cookies.issue_session(caller)
    response = RedirectResponse("/console", status_code=303)
    _set_cookie(response, cookies, SESSION_COOKIE, value)
    return response


@router.get("")
async def jobs_page(
    request: Request,
    console: ConsoleSessionDep,
    session: SessionDep,
    settings: SettingsDep,
    status: Text = None,
    day_from: Annotated[str | None, Query(alias="from", max_length=32)] = None,
    day_to: Annotated[str | None, Query(alias="to", max_length=32)] = None,
    q: Text = None,
    caller: Text = None,
    cursor: Text = None,
) -> Response:
    """The jobs the caller may see, newest first, filtered, a page at a time."""
    query = web_service.parse_query(status, day_from, day_to, q, caller)
    rows = await web_service.job_page(session, console.caller, query, cursor)
    callers = (
        await web_service.caller_choices(session, settings.callers.names())
        if console.caller.admin
        else []
    )
    context = {
        "title": "Jobs",
        "nav": "jobs",
        "rows": rows,
        "query": query,
        "statuses": list(JobStatus),
        "callers": callers,
        "newer_url": newer_url(query, rows.newest_cursor) if cursor is None else None,
        "older_url": _jobs_url(query, cursor=rows.next_cursor) if rows.next_cursor else None,
        "now": utcnow(),
    }
    return render(request, "jobs.html", context)


@router.get("/rows")
async def newer_rows(
    request: Request,
    console: ConsoleSessionDep,
    session: SessionDep,
    status: Text = None,
    day_from: Annotated[str | None, Query(alias="from", max_length=32)] = None,
    day_to: Annotated[str | None, Query(alias="to", max_length=32)] = None,
    q: Text = None,
    caller: Text = None,
    since: Text = None,
) -> Response:
    """Rows of the matching jobs created after `since` (the jobs page polls this)."""
    query = web_service.parse_query(status, day_from, day_to, q, caller)
    rows = await web_service.newer_jobs(session, console.caller, query, since)
    context = {"rows": rows, "newer_url": newer_url(query, rows.newest_cursor or since)}
    return render(request, "rows.html", {**context, "now": utcnow()})


@router.get("/jobs/{job_id}")
async def job_page(
    request: Request,
    job_id: uuid.UUID,
    console: ConsoleSessionDep,
    session: SessionDep,
    events_after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """One job: its images, request, timeline (a page of events at a time) and error."""
    detail = await web_service.job_detail(session, console.caller, job_id, events_after)
    context = {
        "title": f"Job {str(job_id)[:8]}",
        "nav": "jobs",
        "detail": detail,
        "job": detail.job,
        "later_page": events_after is not None,
        "now": utcnow(),
        "notifications": detail.notifications,
    }
    return render(request, "job.html", context)


@router.post("/jobs/{job_id}/notifications/{event_id}/retry")
async def deliver_again(
    request: Request,
    job_id: uuid.UUID,
    event_id: Annotated[str, Path(max_length=64)],
    console: ConsoleSessionDep,
    session: SessionDep,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Deliver one of the job's webhook events again now (the form carries the CSRF token)."""
    if not tokens_match(console.csrf_token, csrf_token):
        raise CsrfRefused("The form's security token is missing or stale: reload the page.")
    await web_service.deliver_again(session, console.caller, job_id, event_id)
    await session.commit()
    notifier = getattr(request.app.state, "notifier", None)
    if notifier is not None:
        notifier.wake()
    return RedirectResponse(f"/console/jobs/{job_id}#notifications", status_code=303)


@router.get("/jobs/{job_id}/row")
async def job_row(
    request: Request, job_id: uuid.UUID, console: ConsoleSessionDep, session: SessionDep
) -> Response:
    """One job's row (the jobs page polls this while the job is running)."""
    rows = await web_service.job_row(session, console.caller, job_id)
    return render(request, "rows.html", {"rows": rows, "newer_url": None, "now": utcnow()})


@router.get("/jobs/{job_id}/images/{index}")
async def image(
    request: Request,
    job_id: uuid.UUID,
    index: IndexPath,
    console: ConsoleSessionDep,
    session: SessionDep,
    settings: SettingsDep,
    download: bool = False,
) -> Response:
    """An archived image of a visible job, at full size (as an attachment with `download`)."""
    found = await web_service.viewer_image(session, console.caller, job_id, index)
    key, content_type, sha256 = found.object_key, found.content_type, found.sha256
    await session.rollback()  # nothing to write: hand the connection back before streaming
    assert key and content_type and sha256
    response = await serve_stored(
        request, settings, key, content_type, sha256, request.headers.get("if-none-match")
    )
    if download:
        name = f"{job_id}-{index}.{EXTENSIONS.get(content_type, 'bin')}"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@router.get("/jobs/{job_id}/images/{index}/thumbnail")
async def thumbnail(
    request: Request,
    job_id: uuid.UUID,
    index: IndexPath,
    console: ConsoleSessionDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The thumbnail of an archived image of a visible job."""
    found = await web_service.viewer_image(session, console.caller, job_id, index)
    key, sha256 = found.thumbnail_key, found.thumbnail_sha256
    await session.rollback()
    assert key and sha256
    return await serve_stored(
        request, settings, key, "image/webp", sha256, request.headers.get("if-none-match")
    )


@router.get("/spend")
async def spend_page(
    request: Request, console: ConsoleSessionDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """Credits per day for the last 30 days, and what is left of each budget."""
    callers = [c for name in settings.callers.names() if (c := settings.callers.get(name))]
    spend = await web_spend.spend(
        session, console.caller, callers, utcnow(), settings.callers.limits.credits_per_day
    )
    context = {
        "title": "Spend",
        "nav": "spend",
        "spend": spend,
        "chart": stacked_bars(spend.days, spend.by_caller),
    }
    return render(request, "spend.html", context)
