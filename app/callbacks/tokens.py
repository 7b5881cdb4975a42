"""Per-job callback tokens: an HMAC of the job id, carried in the callback URL's path."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from pydantic import SecretStr

CALLBACK_PATH = "/callbacks/evolink/{job_id}/{token}"
MAX_CALLBACK_URL_CHARS = 2048
# The longest path we append: the route, a UUID and a 43-character token.
CALLBACK_PATH_CHARS = len(CALLBACK_PATH.format(job_id=uuid.UUID(int=0), token="x" * 43))


class CallbackSigner:
    """Makes and checks the callback URLs of jobs, under one secret."""

    def __init__(self, public_base_url: str, secret: SecretStr) -> None:
        if len(public_base_url.rstrip("/")) + CALLBACK_PATH_CHARS > MAX_CALLBACK_URL_CHARS:
            raise ValueError("PUBLIC_BASE_URL is too long for EvoLink's 2048-character limit")
        self._base = public_base_url.rstrip("/")
        self._key = secret.get_secret_value().encode()

    def token(self, job_id: uuid.UUID) -> str:
        """The unguessable token for one job (43 URL-safe characters)."""
        digest = hmac.new(self._key, job_id.bytes, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def matches(self, job_id: uuid.UUID, presented: str) -> bool:
        """Whether `presented` is the job's token, compared in constant time."""
        return hmac.compare_digest(self.token(job_id).encode(), presented.encode())

    def url_for(self, job_id: uuid.UUID) -> str:
        """The URL EvoLink calls when the job's task ends; the secret part is in the path."""
        return self._base + CALLBACK_PATH.format(job_id=job_id, token=self.token(job_id))
