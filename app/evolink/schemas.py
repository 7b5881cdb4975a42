"""EvoLink's payloads, parsed leniently: only `id` is required, unknown fields are ignored.

Lenient about what is missing, strict about what is there: a task body reaches our database and
EvoLink's URLs (a task id becomes a path segment), so every value it carries is bounded and
checked here, before anything stores or sends it, whether EvoLink or a forger sent it.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from app.evolink.models import MAX_URL_CHARS
from app.safe_json import check_json, check_text

# EvoLink's task ids: `task-unified-<unix seconds>-<8 lowercase alphanumerics>` (shared/evolink/
# API.md). Accepted a little wider (any letters, digits, `_` and `-` after the prefix), never a
# character that means something in a URL path, and within the 128-character column.
TASK_ID_PREFIX = "task-unified-"
MAX_TASK_ID_CHARS = 128
TASK_ID_PATTERN = rf"^{TASK_ID_PREFIX}[A-Za-z0-9_-]{{1,{MAX_TASK_ID_CHARS - len(TASK_ID_PREFIX)}}}$"
MAX_STATUS_CHARS = 32  # job_events.status
MAX_ERROR_CODE_CHARS = 128  # jobs.error_code
MAX_ERROR_MESSAGE_CHARS = 4096
MAX_RESULTS = 32  # EvoLink's models make at most 10 images a task
# A generous bound on EvoLink's estimate (its image tasks take about 100 s): beyond it the
# number is nonsense, and past 2**31 it no longer fits the column.
MAX_ESTIMATED_SECONDS = 7 * 24 * 3600

# Strings a `text` column stores (no NUL, valid Unicode), each within its column or a bound.
StatusText = Annotated[str, Field(max_length=MAX_STATUS_CHARS), AfterValidator(check_text)]
CodeText = Annotated[str, Field(max_length=MAX_ERROR_CODE_CHARS), AfterValidator(check_text)]
MessageText = Annotated[str, Field(max_length=MAX_ERROR_MESSAGE_CHARS), AfterValidator(check_text)]


def _result_url(value: str) -> str:
    check_text(value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain spaces or control characters")
    return value


ResultUrl = Annotated[str, Field(max_length=MAX_URL_CHARS), AfterValidator(_result_url)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateTaskRequest(BaseModel):
    """The body of `POST /v1/images/generations`, as we send it."""

    model: str
    prompt: str
    size: str | None = None
    n: int | None = None
    image_urls: list[str] | None = None
    mask_url: str | None = None
    callback_url: str


class TaskError(_Lenient):
    """Why a task failed or was cancelled; `code` is any string EvoLink chooses."""

    code: CodeText | None = None
    message: MessageText | None = None
    type: CodeText | None = None

    @field_validator("code", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class TaskInfo(_Lenient):
    can_cancel: bool | None = None
    estimated_time: float | None = Field(None, ge=0, le=MAX_ESTIMATED_SECONDS, allow_inf_nan=False)


class Task(_Lenient):
    """EvoLink's task object: the create answer, `GET /v1/tasks/{id}` and the callback body."""

    id: str = Field(pattern=TASK_ID_PATTERN, max_length=MAX_TASK_ID_CHARS)
    status: StatusText | None = None
    progress: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    model: str | None = None
    results: list[ResultUrl] | None = Field(None, max_length=MAX_RESULTS)
    error: TaskError | None = None
    task_info: TaskInfo | None = None
    usage: dict[str, Any] | None = None
    created: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Anywhere in the body (usage is stored as JSON as given): no NaN, no NUL, not too deep.
        return check_json(value)

    @property
    def estimated_time(self) -> int | None:
        """Seconds EvoLink expects the task to take, when it said."""
        seconds = self.task_info.estimated_time if self.task_info else None
        return round(seconds) if seconds is not None else None


class ApiError(_Lenient):
    """The `error` member of an HTTP error, in either generation (string or integer `code`)."""

    code: str | int | None = None
    message: str | None = None
    type: str | None = None
    param: str | None = None
    fallback_suggestion: str | None = None


class ApiErrorBody(_Lenient):
    error: ApiError


class CreditAccount(_Lenient):
    """One of the balances `GET /v1/credits` reports."""

    remaining_credits: float | None = None
    used_credits: float | None = None
    unlimited_credits: bool | None = None


class CreditsData(_Lenient):
    token: CreditAccount | None = None  # this API key's allowance
    user: CreditAccount | None = None  # the account's


class Credits(_Lenient):
    """EvoLink's `GET /v1/credits` answer."""

    success: bool | None = None
    message: str | None = None
    data: CreditsData | None = None

    @property
    def remaining(self) -> float | None:
        """What this key can still spend: the lower of its allowance (unless unlimited) and the
        account's balance; None when EvoLink said neither."""
        data = self.data or CreditsData()
        figures = [data.user.remaining_credits if data.user else None]
        if data.token is not None and not data.token.unlimited_credits:
            figures.append(data.token.remaining_credits)
        known = [figure for figure in figures if figure is not None]
        return min(known) if known else None
