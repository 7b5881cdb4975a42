"""The caller behind a request, from its bearer key."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.keys import find_caller
from app.dependencies import SettingsDep
from app.errors import Unauthenticated

bearer = HTTPBearer(auto_error=False, description="A key from the service's API_KEYS.")


async def get_caller(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The name of the calling service; 401 for a missing or unknown key."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("Send Authorization: Bearer <key> with a key from API_KEYS.")
    caller = find_caller(settings.api_keys, credentials.credentials)
    if caller is None:
        raise Unauthenticated("The API key is not known to this service.")
    structlog.contextvars.bind_contextvars(caller=caller)
    return caller


CallerDep = Annotated[str, Depends(get_caller)]
