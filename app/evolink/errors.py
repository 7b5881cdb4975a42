"""What can go wrong talking to EvoLink, classified by what it means for the request."""

from __future__ import annotations


class EvolinkError(Exception):
    """A failed call to EvoLink; `code` is EvoLink's own error code when it gave one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class EvolinkRequestRejected(EvolinkError):
    """EvoLink refused the request itself (400, 413, 422, content policy): fix the input."""


class EvolinkAuthFailed(EvolinkError):
    """EvoLink refused our key or our access to the model (401, 403): our configuration."""


class EvolinkOutOfCredits(EvolinkError):
    """EvoLink refused for lack of credits (402)."""


class EvolinkRateLimited(EvolinkError):
    """EvoLink asked us to slow down (429); the request was not processed."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class EvolinkUnavailable(EvolinkError):
    """EvoLink could not be reached or said it is unavailable (503): nothing was processed."""


class EvolinkOutcomeUnknown(EvolinkError):
    """The request may have reached EvoLink (timeout after sending, 500, 502, 504): never resend."""


class EvolinkTimeout(EvolinkOutcomeUnknown):
    """EvoLink did not answer in time after the request was sent."""


class EvolinkTaskNotFound(EvolinkError):
    """EvoLink does not know the task, or no longer keeps it (404)."""
