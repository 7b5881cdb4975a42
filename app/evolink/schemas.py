"""EvoLink's payloads, parsed leniently: only `id` is required, unknown fields are ignored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


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

    code: str | None = None
    message: str | None = None
    type: str | None = None

    @field_validator("code", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class TaskInfo(_Lenient):
    can_cancel: bool | None = None
    estimated_time: float | None = None


class Task(_Lenient):
    """EvoLink's task object: the create answer, `GET /v1/tasks/{id}` and the callback body."""

    id: str = Field(min_length=1, max_length=128)
    status: str | None = None
    progress: float | None = None
    model: str | None = None
    results: list[str] | None = None
    error: TaskError | None = None
    task_info: TaskInfo | None = None
    usage: dict[str, Any] | None = None
    created: int | None = None

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
