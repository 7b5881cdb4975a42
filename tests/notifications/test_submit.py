"""POST /v1/jobs with a notify_url: who may use one, and which targets are refused at submit
time (the name resolved, every address checked)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.conftest import BETA_KEY, _empty_tables, client_for, make_settings
from tests.jobs.test_create import accept
from tests.notifications.conftest import ALPHA_KEY_FILE, callers_toml


@pytest.fixture
async def alpha(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, ALPHA_KEY_FILE) as c:
        yield c


@pytest.fixture
async def beta(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, BETA_KEY) as c:
        yield c


async def submit(client: httpx.AsyncClient, notify_url: str) -> httpx.Response:
    return await client.post("/v1/jobs", json={"prompt": "a cat", "notify_url": notify_url})


async def test_an_accepted_notify_url_is_stored_and_shown(
    alpha: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    accept(evolink)
    response = await submit(alpha, "http://127.0.0.1:9/hooks?token=abc")
    assert response.status_code == 202, response.text
    assert response.json()["notify_url"] == "http://127.0.0.1:9/hooks?token=abc"
    shown = await alpha.get(f"/v1/jobs/{response.json()['id']}")
    assert shown.json()["notify_url"] == "http://127.0.0.1:9/hooks?token=abc"
    without = await alpha.post("/v1/jobs", json={"prompt": "a dog"})
    assert without.status_code == 202 and without.json()["notify_url"] is None


async def test_a_caller_without_a_webhook_secret_gets_422(
    beta: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    route = accept(evolink)
    response = await submit(beta, "http://127.0.0.1:9/hooks")
    assert response.status_code == 422
    assert response.json()["code"] == "webhook_secret_missing"
    assert response.json()["errors"][0]["field"] == "notify_url"
    assert not route.called


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/hooks", "file:///etc/passwd", "javascript:alert(1)", "http:///x"]
)
async def test_only_http_and_https_are_accepted(alpha: httpx.AsyncClient, url: str) -> None:
    response = await submit(alpha, url)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "notify_url"


async def test_a_name_that_does_not_resolve_is_refused(alpha: httpx.AsyncClient) -> None:
    response = await submit(alpha, "https://no-such-host.invalid/hooks")
    assert response.status_code == 422
    assert response.json()["code"] == "notify_url_refused"
    assert "cannot be resolved" in response.json()["detail"]


OtherApp = Callable[[Settings], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def other_app() -> AsyncIterator[OtherApp]:
    """Start the app with other settings; alpha's client to it. Its tables are emptied after."""
    stack = contextlib.AsyncExitStack()
    factories = []

    async def start(settings: Settings) -> httpx.AsyncClient:
        application = create_app(settings, run_worker=False)
        await stack.enter_async_context(LifespanManager(application))
        factories.append(application.state.session_factory)
        return client_for(application, ALPHA_KEY_FILE)

    async with stack:
        yield start
        for factory in factories:
            await _empty_tables(factory)


@pytest.fixture
def default_policy(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, callers_file=str(callers_toml(tmp_path / "c.toml")),
                         api_keys="")  # fmt: skip


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://localhost:8080/hooks", "127.0.0.1"),  # a name that resolves to loopback
        ("http://127.0.0.1/hooks", "127.0.0.1"),
        ("http://[::1]:8080/hooks", "::1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),  # cloud metadata
        ("http://[fe80::1]/hooks", "fe80::1"),
        ("http://0.0.0.0:8080/hooks", "0.0.0.0"),  # noqa: S104
    ],
)
async def test_loopback_and_link_local_are_refused_by_default(
    other_app: OtherApp, default_policy: Settings, url: str, address: str
) -> None:
    async with await other_app(default_policy) as alpha:
        response = await submit(alpha, url)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "notify_url_refused"
    assert f"resolves to {address}" in body["detail"] and "NOTIFY_ALLOWED_HOSTS" in body["detail"]


async def test_private_networks_are_allowed_by_default(
    other_app: OtherApp, default_policy: Settings, evolink: respx.MockRouter
) -> None:
    accept(evolink)
    async with await other_app(default_policy) as alpha:
        for url in ("http://10.1.2.3/hooks", "https://192.168.7.7:8443/h", "http://93.184.215.14/"):
            assert (await submit(alpha, url)).status_code == 202, url


@pytest.mark.parametrize(
    ("allowed", "url", "accepted"),
    [
        ("localhost", "http://localhost:8080/hooks", True),  # listed by name
        ("*.localhost,10.0.0.0/8", "http://localhost:8080/hooks", False),
        ("127.0.0.0/8", "http://localhost:8080/hooks", True),  # listed by range
        ("169.254.169.254", "http://169.254.169.254/", True),
        ("localhost", "http://10.1.2.3/hooks", False),  # the list restricts everything else
        ("localhost", "http://93.184.215.14/hooks", False),
        ("*.corp.example,93.184.215.0/24", "http://93.184.215.14/hooks", True),
        ("10.0.0.0/8", "http://10.1.2.3/hooks", True),
    ],
)
async def test_the_allow_list_lets_through_only_what_it_names(
    other_app: OtherApp,
    database_url: str,
    tmp_path: Path,
    evolink: respx.MockRouter,
    allowed: str,
    url: str,
    accepted: bool,
) -> None:
    accept(evolink)
    settings = make_settings(
        database_url, callers_file=str(callers_toml(tmp_path / "c.toml")), api_keys="",
        notify_allowed_hosts=allowed,
    )  # fmt: skip
    async with await other_app(settings) as alpha:
        response = await submit(alpha, url)
    assert (response.status_code == 202) is accepted, response.text
    if not accepted:
        assert response.json()["code"] == "notify_url_refused"
        assert "not in NOTIFY_ALLOWED_HOSTS" in response.json()["detail"]
