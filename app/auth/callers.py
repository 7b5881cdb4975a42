"""The internal callers: who they are (API keys) and their settings (secrets, role, limits).

Callers come from `API_KEYS` (`name:key` pairs: no secrets, no role, no limits) and from the
TOML file named by `CALLERS_FILE`. Every mistake is refused at start-up with one line that names
it (never a key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

CALLER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A caller's name: it owns jobs, so it fits the 64-character `caller` columns."""
MIN_API_KEY_CHARS = 12
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
MIN_WEBHOOK_SECRET_BYTES = 24  # Standard Webhooks secrets are 24 to 64 random bytes


class CallersInvalid(ValueError):
    """The callers' settings are wrong; the message names the mistake, never a key."""


@dataclass(frozen=True)
class CallerLimits:
    """One caller's spend limits; None means no limit."""

    jobs_per_minute: int | None = None
    jobs_in_flight: int | None = None
    credits_per_day: float | None = None
    credits_per_month: float | None = None


@dataclass(frozen=True)
class GlobalLimits:
    """Limits across all callers; None means no limit."""

    credits_per_day: float | None = None


@dataclass(frozen=True)
class Caller:
    """One internal service that calls us, and what it is allowed."""

    name: str
    key_sha256: bytes = field(repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    admin: bool = False
    limits: CallerLimits = CallerLimits()


@dataclass(frozen=True)
class Callers:
    """Every caller, found by key (in constant time) or by name."""

    by_name: Mapping[str, Caller] = field(default_factory=dict)
    limits: GlobalLimits = GlobalLimits()

    def authenticate(self, presented_key: str) -> Caller | None:
        """The caller whose key is `presented_key`; every digest is compared, in constant time."""
        digest = hashlib.sha256(presented_key.encode("utf-8", "surrogatepass")).digest()
        match: Caller | None = None
        for caller in self.by_name.values():
            if hmac.compare_digest(caller.key_sha256, digest):
                match = caller
        return match

    def get(self, name: str) -> Caller | None:
        """The caller named `name`, if any."""
        return self.by_name.get(name)

    def names(self) -> list[str]:
        """Every caller's name, sorted."""
        return sorted(self.by_name)

    def __bool__(self) -> bool:
        return bool(self.by_name)


def key_digest(key: str) -> bytes:
    """The SHA-256 of an API key, as `api_key_sha256` holds it (hex) in the callers file."""
    return hashlib.sha256(key.encode()).digest()


def check_caller_name(name: str) -> str:
    """`name` if it is a valid caller name; CallersInvalid otherwise."""
    if not CALLER_NAME.match(name):
        raise CallersInvalid(
            f"caller name {name[:80]!r} must be 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return name


def check_api_key(name: str, key: str) -> str:
    """`key` if it is long enough to be a secret; CallersInvalid (naming the caller) otherwise."""
    if len(key) < MIN_API_KEY_CHARS:
        raise CallersInvalid(
            f"caller {name!r}: the API key is shorter than {MIN_API_KEY_CHARS} characters"
        )
    return key


def load_callers(api_keys: tuple[tuple[str, SecretStr], ...], callers_file: Path | None) -> Callers:
    """Every caller from `API_KEYS` pairs and the callers file; CallersInvalid on any mistake."""
    callers: dict[str, Caller] = {}
    for name, key in api_keys:
        callers[name] = Caller(name=name, key_sha256=key_digest(key.get_secret_value()))
    limits = GlobalLimits()
    if callers_file is not None:
        document = _read(callers_file)
        unknown = set(document) - {"callers", "limits"}
        if unknown:
            raise CallersInvalid(f"CALLERS_FILE: unknown table(s) {', '.join(sorted(unknown))}")
        for name, entry in _table(document, "callers", "CALLERS_FILE").items():
            if name in callers:
                raise CallersInvalid(f"caller {name!r} is in both API_KEYS and CALLERS_FILE")
            callers[name] = _caller(check_caller_name(name), entry)
        limits = GlobalLimits(**_numbers(_table(document, "limits", "[limits]"), GLOBAL_LIMITS))
    _refuse_shared_keys(callers.values())
    return Callers(by_name=callers, limits=limits)


CALLER_FIELDS = {"api_key", "api_key_sha256", "webhook_secrets", "admin", "limits"}
CALLER_LIMITS = {
    "jobs_per_minute": int,
    "jobs_in_flight": int,
    "credits_per_day": float,
    "credits_per_month": float,
}
GLOBAL_LIMITS = {"credits_per_day": float}


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise CallersInvalid(f"CALLERS_FILE {str(path)!r} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CallersInvalid(f"CALLERS_FILE {str(path)!r} is not valid TOML: {exc}") from None


def _table(document: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise CallersInvalid(f"{where}: {key!r} must be a table")
    return value


def _caller(name: str, entry: object) -> Caller:
    where = f"caller {name!r}"
    if not isinstance(entry, dict):
        raise CallersInvalid(f"{where}: must be a table")
    unknown = set(entry) - CALLER_FIELDS
    if unknown:
        raise CallersInvalid(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    admin = entry.get("admin", False)
    if not isinstance(admin, bool):
        raise CallersInvalid(f"{where}: admin must be true or false")
    return Caller(
        name=name,
        key_sha256=_key_sha256(name, entry),
        webhook_secrets=_webhook_secrets(name, entry.get("webhook_secrets", [])),
        admin=admin,
        limits=CallerLimits(**_numbers(_table(entry, "limits", where), CALLER_LIMITS, where)),
    )


def _key_sha256(name: str, entry: Mapping[str, Any]) -> bytes:
    where = f"caller {name!r}"
    key, digest = entry.get("api_key"), entry.get("api_key_sha256")
    if (key is None) == (digest is None):
        raise CallersInvalid(f"{where}: set exactly one of api_key and api_key_sha256")
    if key is not None:
        if not isinstance(key, str):
            raise CallersInvalid(f"{where}: api_key must be a string")
        return key_digest(check_api_key(name, key))
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise CallersInvalid(f"{where}: api_key_sha256 must be 64 hexadecimal digits")
    return bytes.fromhex(digest)


def _webhook_secrets(name: str, secrets: object) -> tuple[str, ...]:
    where = f"caller {name!r}"
    if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
        raise CallersInvalid(f"{where}: webhook_secrets must be a list of strings")
    for position, secret in enumerate(secrets, 1):
        if not secret.startswith(WEBHOOK_SECRET_PREFIX):
            raise CallersInvalid(f"{where}: webhook secret {position} must start with whsec_")
        try:
            raw = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise CallersInvalid(f"{where}: webhook secret {position} is not base64") from None
        if len(raw) < MIN_WEBHOOK_SECRET_BYTES:
            raise CallersInvalid(
                f"{where}: webhook secret {position} is shorter than "
                f"{MIN_WEBHOOK_SECRET_BYTES} bytes"
            )
    if len(secrets) > 2:
        raise CallersInvalid(f"{where}: at most two webhook secrets (the new one and the old one)")
    return tuple(secrets)


def _numbers(
    table: Mapping[str, Any], allowed: Mapping[str, type], where: str = "[limits]"
) -> dict[str, Any]:
    unknown = set(table) - set(allowed)
    if unknown:
        raise CallersInvalid(f"{where}: unknown limit(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, value in table.items():
        kind = allowed[name]
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            expected = "a number" if kind is float else "a whole number"
            raise CallersInvalid(f"{where}: {name} must be {expected}")
        if not 0 < value < 1e12:
            raise CallersInvalid(f"{where}: {name} must be greater than 0")
        values[name] = kind(value)
    return values


def _refuse_shared_keys(callers: Any) -> None:
    seen: dict[bytes, str] = {}
    for caller in callers:
        if caller.key_sha256 in seen:
            raise CallersInvalid(
                f"callers {seen[caller.key_sha256]!r} and {caller.name!r} have the same API key"
            )
        seen[caller.key_sha256] = caller.name
