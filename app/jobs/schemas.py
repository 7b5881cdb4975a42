"""The jobs API's request and response bodies."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from app.archive.schemas import ImageRead
from app.evolink.models import DEFAULT_MODEL, MAX_URL_CHARS, MODELS, ModelSpec
from app.safe_json import MAX_JSON_DEPTH, check_json, check_text

MAX_METADATA_BYTES = 16 * 1024


def _http_url(value: str) -> str:
    check_text(value)
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value


# The pattern documents the rule for clients and schema-driven tests; _http_url enforces it.
URL_PATTERN = r"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?([/?#][^\s]*)?$"
HttpUrlText = Annotated[
    str,
    Field(max_length=MAX_URL_CHARS, json_schema_extra={"pattern": URL_PATTERN}),
    AfterValidator(_http_url),
]
# Documented from the default model's rules; the validators below apply each model's own.
_SPEC = MODELS[DEFAULT_MODEL]


def _spec(info: ValidationInfo) -> ModelSpec | None:
    return MODELS.get(info.data.get("model", DEFAULT_MODEL))


class JobCreate(BaseModel):
    """A generation request: EvoLink's fields and limits, plus our own `metadata`."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "prompt": "A watercolour fox in a snowy forest",
                    "size": "1:1",
                    "n": 1,
                    "metadata": {"order_id": "A-1042"},
                }
            ],
            # mask_url needs exactly one reference image.
            "if": {"properties": {"mask_url": {"type": "string"}}, "required": ["mask_url"]},
            "then": {
                "properties": {"image_urls": {"minItems": 1, "maxItems": 1}},
                "required": ["image_urls"],
            },
        },
    )

    model: str = Field(
        DEFAULT_MODEL,
        description="Only `gpt-4o-image` is accepted.",
        json_schema_extra={"enum": list(MODELS)},
    )
    prompt: str = Field(
        description="What to draw, or how to edit the input image; 1-2000 chars.",
        json_schema_extra={
            "minLength": 1,
            "maxLength": _SPEC.max_prompt_chars,
            "pattern": r"\S",
        },
    )
    size: str | None = Field(
        None,
        description="One of 1:1, 2:3, 3:2, 1024x1024, 1024x1536, 1536x1024.",
        json_schema_extra={"enum": [*_SPEC.sizes, None]},
    )
    n: int | None = Field(
        None,
        description="Number of images: 1, 2 or 4 (default 1).",
        json_schema_extra={"enum": [*_SPEC.n_values, None]},
    )
    image_urls: list[HttpUrlText] = Field(
        default_factory=list,
        description="Up to 5 reference images (http(s) URLs).",
        json_schema_extra={"maxItems": _SPEC.max_image_urls},
    )
    mask_url: HttpUrlText | None = Field(
        None, description="Edit mask (PNG); only with exactly one image URL."
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description="Any JSON object up to 16 KiB and "
        f"{MAX_JSON_DEPTH} levels deep (finite numbers, no NUL), stored and returned as given.",
    )
    notify_url: HttpUrlText | None = Field(
        None,
        description="Where to POST the job's final event, a signed Standard Webhooks delivery "
        "(README, Webhooks); needs a caller with a webhook secret.",
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"must be one of: {', '.join(MODELS)}")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_length(cls, value: str, info: ValidationInfo) -> str:
        check_text(value)
        if not value.strip():
            raise ValueError("must not be empty")
        spec = _spec(info)
        if spec and len(value) > spec.max_prompt_chars:
            raise ValueError(f"must be at most {spec.max_prompt_chars} characters")
        return value

    @field_validator("size")
    @classmethod
    def _allowed_size(cls, value: str | None, info: ValidationInfo) -> str | None:
        spec = _spec(info)
        if value is not None and spec and value not in spec.sizes:
            raise ValueError(f"must be one of: {', '.join(spec.sizes)}")
        return value

    @field_validator("n")
    @classmethod
    def _allowed_n(cls, value: int | None, info: ValidationInfo) -> int | None:
        spec = _spec(info)
        if value is not None and spec and value not in spec.n_values:
            raise ValueError(f"must be one of: {', '.join(map(str, spec.n_values))}")
        return value

    @field_validator("image_urls")
    @classmethod
    def _image_count(cls, value: list[str], info: ValidationInfo) -> list[str]:
        spec = _spec(info)
        if spec and len(value) > spec.max_image_urls:
            raise ValueError(f"must have at most {spec.max_image_urls} entries")
        return value

    @field_validator("mask_url")
    @classmethod
    def _mask_needs_one_image(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and len(info.data.get("image_urls") or ()) != 1:
            raise ValueError("is only allowed when image_urls has exactly one entry")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_json(value)
            encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
            if len(encoded) > MAX_METADATA_BYTES:
                raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
        return value


class JobErrorRead(BaseModel):
    code: str
    message: str | None


JOB_EXAMPLE: dict[str, Any] = {
    "id": "4f0c2a9e-5b1d-4c3e-9f7a-2d8e6b1c0a55",
    "status": "completed",
    "progress": 100,
    "model": "gpt-4o-image",
    "prompt": "A watercolour fox in a snowy forest",
    "size": "1:1",
    "n": 1,
    "image_urls": [],
    "mask_url": None,
    "metadata": {"order_id": "A-1042"},
    "evolink_task_id": "task-unified-1757156493-imcg5zqt",
    "results": ["https://tempfile.aiquickdraw.com/s/generated_image_url.png"],
    "error": None,
    "usage": {"billing_rule": "per_call", "credits_reserved": 2.5, "user_group": "default"},
    "estimated_time": 100,
    "created_at": "2026-11-26T10:00:00Z",
    "updated_at": "2026-11-26T10:01:42Z",
    "completed_at": "2026-11-26T10:01:42Z",
    "archive_status": "archived",
    "images": ImageRead.model_config["json_schema_extra"]["examples"],  # type: ignore[index]
    "notify_url": None,
}


class JobRead(BaseModel):
    """A job as callers see it."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [JOB_EXAMPLE]})

    id: uuid.UUID
    status: str
    progress: int
    model: str
    prompt: str
    size: str | None
    n: int
    image_urls: list[str]
    mask_url: str | None
    metadata: dict[str, Any] | None
    evolink_task_id: str | None
    results: list[str]
    error: JobErrorRead | None
    usage: dict[str, Any] | None
    estimated_time: int | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    archive_status: str | None = Field(
        None,
        description="Archiving of a completed job's images: `pending`, `archived`, `failed` "
        "(some image could not be archived) or `off`; null until the job completes.",
        json_schema_extra={"enum": ["pending", "archived", "failed", "off", None]},
    )
    images: list[ImageRead] = Field(
        default_factory=list,
        description="The images archived so far, served by this service for as long as the "
        "archive keeps them (`results` keeps EvoLink's links, which expire after 24 h).",
    )
    notify_url: str | None = Field(
        None, description="Where the job's final event is POSTed (null: nowhere)."
    )


JOB_READ_COLUMNS = (
    *sorted(JobRead.model_fields.keys() - {"metadata", "error", "images"}),
    "error_code",
    "error_message",
)
"""The jobs table's columns that a JobRead shows, by name, besides `metadata`."""


def job_read(values: Mapping[str, Any], images: Sequence[ImageRead] = ()) -> JobRead:
    """The API's view of a job, from its columns' values by name (an ORM job's or a row's)."""
    shown = {name: values[name] for name in JOB_READ_COLUMNS[:-2]}
    code = values["error_code"]
    error = {"code": code, "message": values["error_message"]} if code else None
    return JobRead.model_validate(
        {**shown, "metadata": values["metadata"], "error": error, "images": images}
    )


class JobPage(BaseModel):
    """One page of a caller's jobs, newest first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"data": [JOB_EXAMPLE], "next_cursor": None}]}
    )

    data: list[JobRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class JobEventRead(BaseModel):
    """One observation of the job's EvoLink task."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "received_at": "2026-11-26T10:01:42Z",
                    "source": "callback",
                    "status": "completed",
                    "outcome": "deferred",
                    "detail": "confirming with EvoLink",
                    "body": {"id": "task-unified-1757156493-imcg5zqt", "status": "completed"},
                }
            ]
        }
    )

    id: int
    received_at: datetime
    source: str
    status: str | None
    outcome: str
    detail: str | None
    body: Any = Field(
        description="The body as received: parsed JSON, or the raw text when it is not JSON "
        "that renders (too deep, NaN); null when not kept (see `detail`)."
    )


class JobEventPage(BaseModel):
    """One page of a job's history, oldest first."""

    data: list[JobEventRead]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null at the end."
    )
