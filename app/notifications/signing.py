"""Standard Webhooks signatures (standardwebhooks.com), made by the `standardwebhooks` package."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def signed_headers(
    secrets: Sequence[str], event_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    """The delivery headers: `webhook-id` (the event's id, the same on every retry),
    `webhook-timestamp` (seconds) and `webhook-signature`, one `v1,<base64>` per secret (newest
    first), so a receiver holding either secret verifies while they rotate."""
    signatures = " ".join(Webhook(secret).sign(event_id, timestamp, body) for secret in secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": signatures,
    }
