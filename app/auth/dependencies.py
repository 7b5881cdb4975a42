"""The caller behind a request, from its bearer key."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.callers import Caller
from app.dependencies import SettingsDep
from app.errors import Unauthenticated

bearer = HTTPBearer(auto_error=False, description="A caller's key (from API_KEYS or CALLERS_FILE).")


async def get_current_caller(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The calling service with its settings; 401 for a missing or unknown key."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("Send Authorization: Bearer <key> with your caller's API key.")
    caller = settings.callers.authenticate(credentials.credentials)
    if caller is None:
        raise Unauthenticated("The API key is not known to this service.")
    structlog.contextvars.bind_contextvars(caller=caller.name)
    return caller


CurrentCallerDep = Annotated[Caller, Depends(get_current_caller)]


async def get_caller(caller: CurrentCallerDep) -> str:
    """The name of the calling service (the owner of its jobs)."""
    return caller.name


CallerDep = Annotated[str, Depends(get_caller)]
