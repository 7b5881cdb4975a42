"""How archived images appear in a job."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.archive.models import ArchiveImage

_EXAMPLE_URL = "/v1/jobs/4f0c2a9e-5b1d-4c3e-9f7a-2d8e6b1c0a55/images/0"


class ImageRead(BaseModel):
    """One archived image, served by this service for as long as the archive keeps it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "index": 0,
                    "url": _EXAMPLE_URL,
                    "thumbnail_url": f"{_EXAMPLE_URL}/thumbnail",
                    "content_type": "image/png",
                    "bytes": 1843211,
                    "width": 1024,
                    "height": 1024,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "source_url": "https://tempfile.aiquickdraw.com/s/generated_image_url.png",
                }
            ]
        }
    )

    index: int = Field(description="Position in `results`.")
    url: str = Field(description="The archived image (authenticated, like every /v1 route).")
    thumbnail_url: str = Field(description="A WebP thumbnail, longest side 256 px.")
    content_type: str
    bytes: int = Field(description="Size of the archived image in bytes.")
    width: int
    height: int
    sha256: str = Field(description="SHA-256 of the image's bytes (also its ETag).")
    source_url: str = Field(description="EvoLink's URL it was copied from (expires after 24 h).")


def image_read(image: ArchiveImage) -> ImageRead:
    """The API's view of an archived image."""
    url = f"/v1/jobs/{image.job_id}/images/{image.index}"
    assert image.content_type and image.size_bytes is not None and image.sha256
    return ImageRead(
        index=image.index,
        url=url,
        thumbnail_url=f"{url}/thumbnail",
        content_type=image.content_type,
        bytes=image.size_bytes,
        width=image.width or 0,
        height=image.height or 0,
        sha256=image.sha256,
        source_url=image.source_url,
    )
