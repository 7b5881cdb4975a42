"""Shared OpenAPI pieces: the problem+json schema and per-route problem responses."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.errors import PROBLEM_JSON


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the invalid field, or `body`.")
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem detail with a stable machine-readable `code`."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://evolink-jobs.internal/problems/job-not-found",
                    "title": "Job not found",
                    "status": 404,
                    "detail": "no job 0b3c…",
                    "code": "job_not_found",
                }
            ]
        },
    )

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable, machine-readable error code.")
    errors: list[FieldError] | None = Field(None, description="On 422: each invalid field.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting problem+json answers for these statuses.

    503 (the database is unreachable) can come from every route that has one, so it is always in.
    """
    statuses = tuple(sorted({*statuses, 503}))
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "model": Problem,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
