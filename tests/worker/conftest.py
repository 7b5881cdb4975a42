"""Worker tests run with the default settings; a test may change some with
`@pytest.mark.parametrize("settings", [{...}], indirect=True)`."""

from __future__ import annotations

import pytest

from app.config import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    return make_settings(database_url, **getattr(request, "param", {}))
