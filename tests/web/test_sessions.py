"""Signing in and out of the web console: the key checked as the API does, a signed cookie with
the right flags that expires, CSRF tokens on every form, and dev mode's one-time link."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.config import Settings
from app.devmode import DevPlan, banner, dev_settings, enable_console_link
from app.main import create_app
from app.web import devlogin
from app.web.sessions import SESSION_COOKIE, ConsoleCookies
from tests.conftest import ALPHA_KEY, make_settings
from tests.web.conftest import OPS_KEY, browser, csrf_token, sign_in


def set_cookie(response: httpx.Response, name: str) -> Any:
    """The Set-Cookie of `name` in `response`, parsed."""
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        if name in cookie:
            return cookie[name], header
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers}")


async def test_pages_send_strangers_to_sign_in(app: FastAPI) -> None:
    async with browser(app) as client:
        page = await client.get("/console/jobs/00000000-0000-0000-0000-000000000000?x=1")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/console/sign-in?next=/console/jobs/")
        # The page's own script asks with a header: it gets a status, not a redirect.
        fragment = await client.get("/console/rows", headers={"X-Console-Fragment": "1"})
        assert fragment.status_code == 401


async def test_sign_in_sets_a_signed_httponly_strict_secure_expiring_cookie(app: FastAPI) -> None:
    async with browser(app) as client:
        form = await client.get("/console/sign-in")
        assert 'name="api_key"' in form.text and 'type="password"' in form.text
        answer = await client.post(
            "/console/sign-in",
            data={
                "api_key": ALPHA_KEY,
                "csrf_token": csrf_token(form.text),
                "next": "/console/spend",
            },
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/console/spend"
        cookie, header = set_cookie(answer, SESSION_COOKIE)
        assert cookie["httponly"] and cookie["secure"]  # PUBLIC_BASE_URL is https
        assert cookie["samesite"].lower() == "strict"
        assert int(cookie["max-age"]) == 8 * 3600 and cookie["path"] == "/console"
        assert ALPHA_KEY not in header and ALPHA_KEY not in str(answer.headers)
        page = await client.get("/console/spend")
        assert page.status_code == 200 and ">alpha<" in page.text
        assert ALPHA_KEY not in page.text


async def test_no_secure_flag_when_the_service_is_plain_http(database_url: str) -> None:
    settings = make_settings(
        database_url, public_base_url="http://127.0.0.1:8000", allow_insecure_callbacks=True
    )
    cookies = ConsoleCookies.from_settings(settings)
    assert cookies.spec.secure is False
    https = ConsoleCookies.from_settings(make_settings(database_url))
    assert https.spec.secure is True


async def test_a_wrong_key_is_refused_and_never_echoed(app: FastAPI) -> None:
    async with browser(app) as client:
        answer = await sign_in(client, "not-a-key-but-a-guess")
        assert answer.status_code == 401
        assert "not known" in answer.text and "not-a-key-but-a-guess" not in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
        assert (await client.get("/console")).status_code == 303


@pytest.mark.parametrize("token", [None, "", "forged-token"])
async def test_sign_in_without_the_csrf_token_is_refused(app: FastAPI, token: str | None) -> None:
    async with browser(app) as client:
        await client.get("/console/sign-in")  # the CSRF cookie is set; the form's token is not sent
        data = {"api_key": ALPHA_KEY} | ({"csrf_token": token} if token is not None else {})
        answer = await client.post("/console/sign-in", data=data)
        assert answer.status_code == 403 and "security token" in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


async def test_a_token_without_its_cookie_is_refused(app: FastAPI) -> None:
    """A token copied from someone else's form is useless without their cookie."""
    async with browser(app) as victim, browser(app) as attacker:
        token = csrf_token((await attacker.get("/console/sign-in")).text)
        answer = await victim.post(
            "/console/sign-in", data={"api_key": ALPHA_KEY, "csrf_token": token}
        )
        assert answer.status_code == 403


async def test_sign_out_needs_the_sessions_csrf_token(alpha_console: httpx.AsyncClient) -> None:
    refused = await alpha_console.post("/console/sign-out", data={})
    assert refused.status_code == 403
    assert (await alpha_console.get("/console")).status_code == 200  # still signed in
    token = csrf_token((await alpha_console.get("/console")).text)
    answer = await alpha_console.post("/console/sign-out", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    cookie, _ = set_cookie(answer, SESSION_COOKIE)
    assert cookie.value == "" and cookie["max-age"] == "0"
    assert (await alpha_console.get("/console")).status_code == 303


async def test_a_forged_or_tampered_cookie_is_not_a_session(
    app: FastAPI, settings: Settings
) -> None:
    async with browser(app) as client:
        assert (await sign_in(client, ALPHA_KEY)).status_code == 303
        value = client.cookies[SESSION_COOKIE]
        client.cookies.clear()
        payload, stamp, signature = value.rsplit(".", 2)
        client.cookies.set(SESSION_COOKIE, f"{payload}.{stamp}.{signature[:-2]}AA", path="/console")
        assert (await client.get("/console")).status_code == 303
        # A cookie signed with another secret (another deployment) is refused too.
        other = make_settings(
            settings.database_url, console_secret="another-console-secret-of-32-bytes!"
        )
        caller = settings.callers.get("alpha")
        assert caller is not None
        forged, _ = ConsoleCookies.from_settings(other).issue_session(caller)
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, forged, path="/console")
        assert (await client.get("/console")).status_code == 303


async def test_sessions_expire(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    cookies = ConsoleCookies.from_settings(settings)
    caller = settings.callers.get("alpha")
    assert caller is not None
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - settings.console_session_seconds - 5)
    old, _ = cookies.issue_session(caller)
    fresh_enough = real() - settings.console_session_seconds + 60
    monkeypatch.setattr(time, "time", lambda: fresh_enough)
    recent, _ = cookies.issue_session(caller)
    monkeypatch.setattr(time, "time", real)
    assert cookies.read_session(old) is None
    assert cookies.read_session(recent) is not None


async def test_a_new_key_ends_the_old_keys_sessions(settings: Settings) -> None:
    caller = settings.callers.get("alpha")
    assert caller is not None
    value, _ = ConsoleCookies.from_settings(settings).issue_session(caller)
    rotated = make_settings(
        settings.database_url, api_keys="alpha:a-brand-new-key-0123,beta:key-beta-0123456789"
    )
    assert ConsoleCookies.from_settings(rotated).read_session(value) is None
    assert ConsoleCookies.from_settings(settings).read_session(value) is not None


def test_console_secret_must_be_long_enough(database_url: str) -> None:
    with pytest.raises(ValidationError, match="console_secret"):
        make_settings(database_url, console_secret="short")
    with pytest.raises(ValidationError, match="console_session_seconds"):
        make_settings(database_url, console_session_seconds=5)


async def test_after_sign_in_only_console_paths_are_followed(app: FastAPI) -> None:
    async with browser(app) as client:
        form = await client.get("/console/sign-in")
        answer = await client.post(
            "/console/sign-in",
            data={"api_key": OPS_KEY, "csrf_token": csrf_token(form.text), "next": "//evil.test/"},
        )
        assert answer.headers["location"] == "/console"


async def test_dev_login_link_exists_only_in_dev_mode_and_works_once(app: FastAPI) -> None:
    async with browser(app) as client:
        assert (await client.get("/console/dev-login?token=anything")).status_code == 404
        url = devlogin.enable(app, "alpha", "https://jobs.example.test")
        token = url.split("token=")[1]
        assert (await client.get("/console/dev-login?token=wrong")).status_code == 404
        answer = await client.get(f"/console/dev-login?token={token}")
        assert answer.status_code == 303 and answer.headers["location"] == "/console"
        assert (await client.get("/console")).status_code == 200
    async with browser(app) as second:
        assert (await second.get(f"/console/dev-login?token={token}")).status_code == 404
        assert (await second.get("/console")).status_code == 303


def test_dev_mode_prints_the_console_and_its_one_time_link(tmp_path: Path) -> None:
    plan = DevPlan(tmp_path, "127.0.0.1", 8000, 8001, 3.0)
    settings = dev_settings(plan)
    app = create_app(settings)
    link = enable_console_link(app, plan)
    assert link.startswith("http://127.0.0.1:8000/console/dev-login?token=")
    login = devlogin.for_app(app)
    assert login is not None and login.caller == "dev" and login.token in link
    text = banner(plan, settings, link)
    assert "http://127.0.0.1:8000/console" in text and link in text
    assert devlogin.for_app(create_app(settings)) is None  # `serve` builds apps without one
