"""One log line when the database goes away and one when it is back, not a stack trace per tick."""

from __future__ import annotations

import time

import structlog

from app.errors import database_error_fields, is_database_unavailable

log = structlog.get_logger(__name__)


class OutageLog:
    """Tracks whether background work can reach the database, logging only the transitions."""

    def __init__(self) -> None:
        self._down_since: float | None = None

    @property
    def database_down(self) -> bool:
        return self._down_since is not None

    def failed(self, exc: BaseException) -> bool:
        """Note a failure; False when it is not an outage (the caller reports it as a bug)."""
        if not is_database_unavailable(exc):
            return False
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("worker_database_unavailable", **database_error_fields(exc))
        return True

    def succeeded(self) -> None:
        """Note that the database answered; logs the end of an outage."""
        if self._down_since is not None:
            seconds = round(time.monotonic() - self._down_since, 1)
            self._down_since = None
            log.info("worker_database_recovered", outage_seconds=seconds)
