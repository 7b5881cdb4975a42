"""Who is looking at the console: the signed session cookie, checked on every request."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request

from app.dependencies import SettingsDep
from app.web.errors import SignInRequired
from app.web.sessions import SESSION_COOKIE, ConsoleCookies, ConsoleSession


async def get_cookies(request: Request, settings: SettingsDep) -> ConsoleCookies:
    """The app's console cookie signer, made once from its settings."""
    cookies: ConsoleCookies | None = getattr(request.app.state, "console_cookies", None)
    if cookies is None:
        cookies = ConsoleCookies.from_settings(settings)
        request.app.state.console_cookies = cookies
    return cookies


CookiesDep = Annotated[ConsoleCookies, Depends(get_cookies)]


async def optional_session(request: Request, cookies: CookiesDep) -> ConsoleSession | None:
    """The signed-in caller, if the request carries a valid session cookie."""
    session = cookies.read_session(request.cookies.get(SESSION_COOKIE))
    if session is not None:
        request.state.console_session = session
        structlog.contextvars.bind_contextvars(caller=session.caller.name)
    return session


async def current_session(
    session: Annotated[ConsoleSession | None, Depends(optional_session)],
) -> ConsoleSession:
    """The signed-in caller; SignInRequired (a redirect to the sign-in page) otherwise."""
    if session is None:
        raise SignInRequired("Sign in with your caller's API key to use the console.")
    return session


OptionalSessionDep = Annotated[ConsoleSession | None, Depends(optional_session)]
ConsoleSessionDep = Annotated[ConsoleSession, Depends(current_session)]
