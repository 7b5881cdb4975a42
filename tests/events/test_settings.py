"""The waiting settings: defaults, and one line naming each bad value."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.config import Settings


def test_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.max_waiters == 1000
    assert settings.wait_recheck_seconds == 5
    assert settings.stream_heartbeat_seconds == 15


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_waiters", 0),
        ("wait_recheck_seconds", 0),
        ("wait_recheck_seconds", 61),
        ("stream_heartbeat_seconds", 0),
        ("stream_heartbeat_seconds", 301),
    ],
)
def test_bad_values_are_refused_by_name(field: str, value: float) -> None:
    values: dict[str, Any] = {field: value}
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, **values)
    errors = refused.value.errors()
    assert [error["loc"] for error in errors] == [(field,)]
