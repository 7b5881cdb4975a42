"""The jobs API's request and response bodies."""

from __future__ import annotations

import json
import uuid
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

from app.evolink.models import DEFAULT_MODEL, MAX_URL_CHARS, MODELS, ModelSpec

MAX_METADATA_BYTES = 16 * 1024


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value


HttpUrlText = Annotated[str, Field(max_length=MAX_URL_CHARS), AfterValidator(_http_url)]


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
            ]
        },
    )

    model: str = Field(DEFAULT_MODEL, description="Only `gpt-4o-image` is accepted.")
    prompt: str = Field(description="What to draw, or how to edit the input image; 1-2000 chars.")
    size: str | None = Field(
        None, description="One of 1:1, 2:3, 3:2, 1024x1024, 1024x1536, 1536x1024."
    )
    n: int | None = Field(None, description="Number of images: 1, 2 or 4 (default 1).")
    image_urls: list[HttpUrlText] = Field(
        default_factory=list, description="Up to 5 reference images (http(s) URLs)."
    )
    mask_url: HttpUrlText | None = Field(
        None, description="Edit mask (PNG); only with exactly one image URL."
    )
    metadata: dict[str, Any] | None = Field(
        None, description="Any JSON object up to 16 KiB, stored and returned as given."
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
            encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
            if len(encoded) > MAX_METADATA_BYTES:
                raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
        return value


class JobErrorRead(BaseModel):
    code: str
    message: str | None


class JobRead(BaseModel):
    """A job as callers see it."""

    model_config = ConfigDict(from_attributes=True)

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


class JobPage(BaseModel):
    """One page of a caller's jobs, newest first."""

    data: list[JobRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class JobEventRead(BaseModel):
    """One observation of the job's EvoLink task."""

    id: int
    received_at: datetime
    source: str
    status: str | None
    outcome: str
    detail: str | None
    body: Any = Field(description="The body as received: parsed JSON, or the raw text.")


class JobEventList(BaseModel):
    data: list[JobEventRead]
