"""Problems the spend rules answer with."""

from __future__ import annotations

import math
from typing import Any

from app.errors import AppError


class QuotaExceeded(AppError):
    """A create would pass one of the caller's (or the global) limits; nothing was created."""

    status, code, title = 429, "quota_exceeded", "Quota exceeded"

    def __init__(self, detail: str, retry_after: float, **extensions: Any) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(detail, retry_after=seconds, **extensions)
        self.headers["Retry-After"] = str(seconds)


class EvolinkOutOfCreditsBackoff(AppError):
    """EvoLink said it is out of credits a moment ago; new jobs are refused without asking it."""

    status, code, title = 503, "evolink_out_of_credits", "EvoLink is out of credits"

    def __init__(self, detail: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(detail, retry_after=seconds)
        self.headers["Retry-After"] = str(seconds)


class AdminOnly(AppError):
    status, code, title = 403, "admin_only", "Only admin callers may see this"


class CallerNotFound(AppError):
    status, code, title = 404, "caller_not_found", "No such caller"
