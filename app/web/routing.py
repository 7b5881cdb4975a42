"""How console routes answer: HTML pages from templates, errors as HTML pages (never
problem+json), and the headers every console answer carries."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from app.errors import AppError, validation_errors
from app.web import views
from app.web.errors import SignInRequired

log = structlog.get_logger(__name__)

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.filters.update(
    age=views.age, file_size=views.file_size, timestamp=views.timestamp, credits=views.credits
)
FRAGMENT_HEADER = "X-Console-Fragment"
# Images may come from a presigned S3 URL (ARCHIVE_PRESIGNED_REDIRECTS), hence https: for img.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """A page (or fragment) from `template`; `session` in the context is the signed-in caller."""
    context.setdefault("session", getattr(request.state, "console_session", None))
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def is_fragment(request: Request) -> bool:
    """Whether the console's own script asked (it wants a status, not a redirect)."""
    return request.headers.get(FRAGMENT_HEADER) == "1"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    if target and target.startswith("/console") and not target.startswith("/console/sign-"):
        return target
    return "/console"


class ConsoleRoute(APIRoute):
    """A console route: its AppErrors and invalid parameters become HTML pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired as exc:
                response = _sign_in_required(request, exc)
            except RequestValidationError as exc:
                errors = validation_errors(exc.errors())
                response = render(
                    request,
                    "error.html",
                    {"title": "Invalid request", "status": 422, "errors": errors},
                    422,
                )
            except AppError as exc:
                response = render(
                    request,
                    "error.html",
                    {"title": exc.title, "status": exc.status, "detail": exc.detail},
                    exc.status,
                )
            _secure(response)
            return response

        return handle


def _sign_in_required(request: Request, exc: SignInRequired) -> Response:
    if is_fragment(request) or request.method != "GET":
        return Response(exc.detail, status_code=401, media_type="text/plain")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/sign-in?next={quote(safe_next(target))}", status_code=303)


def _secure(response: Response) -> None:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
