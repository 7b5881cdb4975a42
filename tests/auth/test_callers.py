"""The callers file: keys, secrets, roles and limits, and one readable line for each mistake."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr, ValidationError

from app.auth.callers import CallerLimits, CallersInvalid, GlobalLimits, load_callers
from app.config import Settings
from app.main import create_app
from tests.conftest import make_settings
from tests.test_cli import base_env, run_cli

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
RENDER_KEY = "render-key-0123456789"
REPORTS_KEY = "reports-key-0123456789"

EXAMPLE = f"""
[callers.render-service]
api_key = "{RENDER_KEY}"
webhook_secrets = ["{SECRET}", "{OLD_SECRET}"]
[callers.render-service.limits]
jobs_per_minute = 60
jobs_in_flight = 20
credits_per_day = 500
credits_per_month = 10000

[callers.reports]
api_key_sha256 = "{hashlib.sha256(REPORTS_KEY.encode()).hexdigest()}"
admin = true

[limits]
credits_per_day = 5000
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callers.toml"
    path.write_text(text)
    return path


def test_the_example_file_loads_with_keys_secrets_roles_and_limits(tmp_path: Path) -> None:
    callers = load_callers((("legacy", SecretStr("legacy-key-0123")),), write(tmp_path, EXAMPLE))
    assert callers.names() == ["legacy", "render-service", "reports"]
    render = callers.authenticate(RENDER_KEY)
    assert render is not None and render.name == "render-service"
    assert render.webhook_secrets == (SECRET, OLD_SECRET) and not render.admin
    assert render.limits == CallerLimits(60, 20, 500.0, 10000.0)
    reports = callers.authenticate(REPORTS_KEY)  # found through its SHA-256 alone
    assert reports is not None and reports.admin and reports.limits == CallerLimits()
    legacy = callers.authenticate("legacy-key-0123")
    assert legacy is not None and legacy.webhook_secrets == () and not legacy.admin
    assert callers.limits == GlobalLimits(credits_per_day=5000.0)
    assert callers.authenticate(RENDER_KEY[:-1]) is None
    assert RENDER_KEY not in repr(callers) and SECRET not in repr(callers)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[callers.a\n", "not valid TOML"),
        ('[callers."bad name!"]\napi_key = "k0123456789ab"', "must be 1 to 64"),
        (f'[callers.{"n" * 65}]\napi_key = "k0123456789ab"', "must be 1 to 64"),
        ("[callers.a]\nadmin = true", "exactly one of api_key and api_key_sha256"),
        ('[callers.a]\napi_key = "short"', "shorter than 12"),
        ('[callers.a]\napi_key_sha256 = "abc"', "64 hexadecimal digits"),
        ('[callers.a]\napi_key = "k0123456789ab"\nrole = "x"', "unknown setting(s) role"),
        ('[callers.a]\napi_key = "k0123456789ab"\nadmin = "yes"', "admin must be true or false"),
        ('[callers.a]\napi_key = "k0123456789ab"\nwebhook_secrets = ["abc"]', "start with whsec_"),
        (
            '[callers.a]\napi_key = "k0123456789ab"\nwebhook_secrets = ["whsec_c2hvcnQ="]',
            "shorter than 24 bytes",
        ),
        (
            '[callers.a]\napi_key = "k0123456789ab"\n[callers.a.limits]\njobs_per_minute = 0',
            "jobs_per_minute must be greater than 0",
        ),
        (
            '[callers.a]\napi_key = "k0123456789ab"\n[callers.a.limits]\njobs_in_flight = 1.5',
            "jobs_in_flight must be a whole number",
        ),
        (
            '[callers.a]\napi_key = "k0123456789ab"\n[callers.a.limits]\nper_hour = 3',
            "unknown limit(s) per_hour",
        ),
        ("[limits]\ncredits_per_week = 3", "unknown limit(s) credits_per_week"),
        ('[caller.a]\napi_key = "k0123456789ab"', "unknown table(s) caller"),
        (
            '[callers.a]\napi_key = "k0123456789ab"\n[callers.b]\napi_key = "k0123456789ab"',
            "callers 'a' and 'b' have the same API key",
        ),
        ('[callers.legacy]\napi_key = "k0123456789ab"', "in both API_KEYS and CALLERS_FILE"),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CallersInvalid) as caught:
        load_callers((("legacy", SecretStr("legacy-key-0123")),), write(tmp_path, text))
    assert message in str(caught.value)
    assert "k0123456789ab" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot be read"):
        Settings(_env_file=None, callers_file=tmp_path / "absent.toml")


def test_serve_refuses_a_bad_callers_file_with_one_line(tmp_path: Path) -> None:
    env = base_env(tmp_path, CALLERS_FILE=str(write(tmp_path, '[callers.a]\napi_key = "k"')))
    result = run_cli("serve", env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "shorter than 12 characters" in lines[0], result.stderr


def test_callers_file_alone_is_enough_to_serve(tmp_path: Path) -> None:
    env = base_env(tmp_path, CALLERS_FILE=str(write(tmp_path, EXAMPLE)))
    del env["API_KEYS"]
    result = run_cli("serve", env=env)
    assert "missing settings" not in result.stderr  # it goes on to the migration check
    assert "not migrated" in result.stderr


async def test_file_callers_authenticate_on_the_api(tmp_path: Path, database_url: str) -> None:
    app = create_app(
        make_settings(database_url, callers_file=write(tmp_path, EXAMPLE)), run_worker=False
    )
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ok = await client.get("/v1/jobs", headers={"Authorization": f"Bearer {RENDER_KEY}"})
            assert ok.status_code == 200
            prefix = RENDER_KEY[:-3]
            denied = await client.get("/v1/jobs", headers={"Authorization": f"Bearer {prefix}"})
            assert denied.status_code == 401
