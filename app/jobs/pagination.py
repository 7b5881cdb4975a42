"""Opaque keyset cursors for newest-first listings."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from app.errors import InvalidCursor


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    """The cursor that continues after this job."""
    raw = json.dumps([created_at.isoformat(), str(job_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The keyset position a cursor stands for; InvalidCursor if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        position = datetime.fromisoformat(created_at), uuid.UUID(job_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("cursor is not one this API returned") from exc
    if position[0].tzinfo is None:
        raise InvalidCursor("cursor is not one this API returned")
    return position
