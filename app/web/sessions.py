"""The console's signed cookies: the session (who signed in, its CSRF token) and the sign-in
form's CSRF token.

Both are signed with a key derived from CONSOLE_SECRET (or, when unset, CALLBACK_SECRET), carry
their issue time, and are refused once older than CONSOLE_SESSION_SECONDS. A session also holds
a fingerprint of the caller's key: replacing the key in the callers' settings ends its sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeTimedSerializer

from app.auth.callers import Caller, Callers
from app.config import Settings

SESSION_COOKIE = "evolink_console"
CSRF_COOKIE = "evolink_console_csrf"
COOKIE_PATH = "/console"
_KEY_CONTEXT = b"evolink-jobs web console cookies v1"


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in caller and the CSRF token its forms must carry."""

    caller: Caller
    csrf_token: str


@dataclass(frozen=True)
class CookieSpec:
    """How the console's cookies are set: lifetime and the Secure flag."""

    max_age: int
    secure: bool


class ConsoleCookies:
    """Signs and reads the console's cookies."""

    def __init__(self, secret: bytes, callers: Callers, spec: CookieSpec) -> None:
        self._session = URLSafeTimedSerializer(secret, salt="console-session")
        self._csrf = URLSafeTimedSerializer(secret, salt="console-csrf")
        self._fingerprint_key = hmac.new(secret, b"key fingerprint", hashlib.sha256).digest()
        self.callers = callers
        self.spec = spec

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleCookies:
        """The cookies keyed from CONSOLE_SECRET, or derived from CALLBACK_SECRET."""
        chosen = settings.console_secret or settings.callback_secret
        if chosen is None:
            raise ValueError("CONSOLE_SECRET or CALLBACK_SECRET is required for the console")
        secret = hmac.new(chosen.get_secret_value().encode(), _KEY_CONTEXT, hashlib.sha256)
        secure = (settings.public_base_url or "").startswith("https://")
        spec = CookieSpec(max_age=settings.console_session_seconds, secure=secure)
        return cls(secret.digest(), settings.callers, spec)

    def issue_session(self, caller: Caller) -> tuple[str, ConsoleSession]:
        """A new session for `caller` (with a fresh CSRF token) and its cookie value."""
        csrf_token = secrets.token_urlsafe(32)
        value = self._session.dumps(
            {"caller": caller.name, "key": self._key_fingerprint(caller), "csrf": csrf_token}
        )
        return value, ConsoleSession(caller, csrf_token)

    def read_session(self, value: str | None) -> ConsoleSession | None:
        """The session a cookie holds; None if missing, forged, expired, or its caller's key
        has changed or its caller is gone."""
        if not value:
            return None
        try:
            data = self._session.loads(value, max_age=self.spec.max_age)
        except BadData:
            return None
        if not isinstance(data, dict):
            return None
        caller = self.callers.get(str(data.get("caller", "")))
        if caller is None or not hmac.compare_digest(
            str(data.get("key", "")), self._key_fingerprint(caller)
        ):
            return None
        return ConsoleSession(caller, str(data.get("csrf", "")))

    def issue_csrf(self) -> tuple[str, str]:
        """A new sign-in CSRF token and the cookie value that vouches for it."""
        token = secrets.token_urlsafe(32)
        return self._csrf.dumps(token), token

    def read_csrf(self, value: str | None) -> str | None:
        """The sign-in CSRF token a cookie vouches for, if it is ours and current."""
        if not value:
            return None
        try:
            token = self._csrf.loads(value, max_age=self.spec.max_age)
        except BadData:
            return None
        return token if isinstance(token, str) else None

    def _key_fingerprint(self, caller: Caller) -> str:
        return hmac.new(self._fingerprint_key, caller.key_sha256, hashlib.sha256).hexdigest()[:32]


def tokens_match(expected: str | None, presented: str | None) -> bool:
    """Whether a form's CSRF token is the expected one (constant time; empty never matches)."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
