"""The caller behind a request, from its bearer key."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.callers import Caller
from app.dependencies import SettingsDep
from app.errors import UNAUTHENTICATED_DETAIL, Unauthenticated

bearer = HTTPBearer(auto_error=False, description="A caller's key (from API_KEYS or CALLERS_FILE).")


async def get_current_caller(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The calling service with its settings; 401 for a missing or unknown key."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated(UNAUTHENTICATED_DETAIL)
    # RequestLimits has already checked the key of a request with a body.
    found: Caller | None = getattr(request.state, "caller", None)
    caller = found or settings.callers.authenticate(credentials.credentials)
    if caller is None:
        raise Unauthenticated("The API key is not known to this service.")
    structlog.contextvars.bind_contextvars(caller=caller.name)
    return caller


CurrentCallerDep = Annotated[Caller, Depends(get_current_caller)]


async def get_caller(caller: CurrentCallerDep) -> str:
    """The name of the calling service (the owner of its jobs)."""
    return caller.name


CallerDep = Annotated[str, Depends(get_caller)]
