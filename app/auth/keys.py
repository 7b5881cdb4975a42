"""Caller API keys: parsing `API_KEYS` and matching a presented bearer token."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pydantic import SecretStr


@dataclass(frozen=True)
class ApiKey:
    """One internal caller: its name (the owner of its jobs) and its secret key."""

    name: str
    key: SecretStr


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Parse `name:key,name:key`; raise ValueError naming the bad entry (never its key)."""
    keys: list[ApiKey] = []
    for position, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), 1):
        name, sep, key = entry.partition(":")
        name, key = name.strip(), key.strip()
        if not sep or not name or not key:
            raise ValueError(f"entry {position} is not of the form name:key")
        if any(existing.name == name for existing in keys):
            raise ValueError(f"caller name {name!r} appears twice")
        keys.append(ApiKey(name=name, key=SecretStr(key)))
    return tuple(keys)


def find_caller(keys: tuple[ApiKey, ...], presented: str) -> str | None:
    """The caller whose key matches `presented`, compared in constant time against every key."""
    match: str | None = None
    for candidate in keys:
        if hmac.compare_digest(candidate.key.get_secret_value().encode(), presented.encode()):
            match = candidate.name
    return match
