"""The state-machine tests apply callbacks directly; test_verification.py covers the default."""

from __future__ import annotations

import pytest

from app.config import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, verify_callbacks=False)
