"""Settings: parsing, and one readable line for each bad or missing one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.auth.keys import parse_api_keys
from app.config import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_defaults_are_embedded_sqlite_and_real_evolink() -> None:
    s = settings()
    assert s.database_url == "sqlite+aiosqlite:///./evolink_jobs.db"
    assert s.evolink_base_url == "https://api.evolink.ai"
    assert s.missing_for_serving() == [
        "EVOLINK_API_KEY",
        "PUBLIC_BASE_URL",
        "CALLBACK_SECRET",
        "API_KEYS or CALLERS_FILE",
    ]


def test_api_keys_are_parsed_and_matched() -> None:
    keys = parse_api_keys("billing:key-one-0123, search : key-two-0123 ,")
    assert [k.name for k in keys] == ["billing", "search"]
    callers = settings(api_keys="billing:key-one-0123, search : key-two-0123 ,").callers
    found = callers.authenticate("key-two-0123")
    assert found is not None and found.name == "search"
    assert callers.authenticate("key-two-012") is None  # a prefix is not the key
    assert callers.authenticate("key-thr-0123") is None
    assert "key-one-0123" not in repr(keys) + repr(callers)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"api_keys": "nokey"}, "api_keys"),
        ({"api_keys": "a:1,a:2"}, "api_keys"),
        ({"api_keys": "a:k"}, "shorter than 12"),
        ({"api_keys": "a:same-key-0123,b:same-key-0123"}, "the same API key"),
        ({"api_keys": f"{'n' * 65}:key-0123456789"}, "1 to 64"),
        ({"callback_secret": "short"}, "callback_secret"),
        ({"public_base_url": "http://jobs.example.com"}, "PUBLIC_BASE_URL"),
        ({"public_base_url": "jobs.example.com"}, "public_base_url"),
        ({"archive_download_timeout_seconds": 60}, "shorter than CLAIM_LEASE_SECONDS"),
    ],
)
def test_invalid_settings_name_the_setting(values: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    assert named in str(caught.value)


def test_insecure_callbacks_only_when_allowed() -> None:
    s = settings(public_base_url="http://localhost:8000/", allow_insecure_callbacks=True)
    assert s.public_base_url == "http://localhost:8000"


def test_secrets_do_not_show_in_repr() -> None:
    s = settings(
        evolink_api_key="sk-evo-secret", callback_secret="c" * 40, api_keys="a:topsecret-key"
    )
    text = repr(s) + str(s)
    assert "sk-evo-secret" not in text and "c" * 40 not in text and "topsecret-key" not in text


def test_every_setting_is_documented_in_env_example() -> None:
    lines = (Path(__file__).resolve().parent.parent / ".env.example").read_text().splitlines()
    documented = {}
    for previous, line in zip(["", *lines], lines, strict=False):
        if match := re.match(r"^([A-Z_]+)=", line):
            documented[match.group(1)] = previous
    assert set(documented) == {name.upper() for name in Settings.model_fields}
    for name, comment in documented.items():
        assert comment.startswith("# "), f"{name} has no comment of its own"
