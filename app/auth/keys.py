"""Parsing `API_KEYS` (`name:key,name:key`); app/auth/callers.py matches presented keys."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from app.auth.callers import check_api_key, check_caller_name


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
        check_caller_name(name)
        check_api_key(name, key)
        keys.append(ApiKey(name=name, key=SecretStr(key)))
    return tuple(keys)
