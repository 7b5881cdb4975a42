"""Apps with callers that have limits, a frozen spend clock, and EvoLink faked at the boundary."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.main import create_app
from app.spend import windows
from tests.conftest import _empty_tables, client_for, make_settings
from tests.support import evolink_payloads as payloads

CAPPED_KEY = "key-capped-0123456789"
OTHER_KEY = "key-other-0123456789"
ADMIN_KEY = "key-admin-0123456789"
CREATE = "/v1/images/generations"


def callers_toml(
    limits: dict[str, float] | None = None, global_limits: dict[str, float] | None = None
) -> str:
    """Callers `capped` (with `limits`), `other` (none) and `ops` (an admin), and `[limits]`."""
    lines = [
        f'[callers.capped]\napi_key = "{CAPPED_KEY}"',
        "[callers.capped.limits]",
        *(f"{name} = {value}" for name, value in (limits or {}).items()),
        f'[callers.other]\napi_key = "{OTHER_KEY}"',
        f'[callers.ops]\napi_key = "{ADMIN_KEY}"\nadmin = true',
        "[limits]",
        *(f"{name} = {value}" for name, value in (global_limits or {}).items()),
    ]
    return "\n".join(lines) + "\n"


class Clock:
    """The spend rules' clock, frozen at `at` until a test moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Frozen at 2026-12-01 10:00:15 UTC."""
    frozen = Clock(datetime(2026, 12, 1, 10, 0, 15, tzinfo=UTC))
    monkeypatch.setattr(windows, "now", frozen)
    return frozen


SpendAppFactory = Callable[..., Any]


@pytest.fixture
def spend_app(database_url: str, tmp_path: Path) -> SpendAppFactory:
    """`async with spend_app(limits=..., global_limits=..., **settings) as app:`."""

    @asynccontextmanager
    async def make(
        limits: dict[str, float] | None = None,
        global_limits: dict[str, float] | None = None,
        **overrides: Any,
    ) -> AsyncIterator[FastAPI]:
        path = tmp_path / "callers.toml"
        path.write_text(callers_toml(limits, global_limits))
        settings = make_settings(database_url, api_keys="", callers_file=str(path), **overrides)
        application = create_app(settings, run_worker=False)
        async with LifespanManager(application):
            try:
                yield application
            finally:
                await _empty_tables(application.state.session_factory)

    return make


@asynccontextmanager
async def clients(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """(capped, other, ops) clients."""
    async with (
        client_for(app, CAPPED_KEY) as capped,
        client_for(app, OTHER_KEY) as other,
        client_for(app, ADMIN_KEY) as ops,
    ):
        yield capped, other, ops


@pytest.fixture
def evolink_accepts(evolink: respx.MockRouter) -> Iterator[respx.Route]:
    """EvoLink accepts every create with a new task id (2.5 credits reserved per image)."""
    counter = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        counter["n"] += 1
        n = json.loads(request.content).get("n") or 1
        usage = {"billing_rule": "per_call", "credits_reserved": 2.5 * n, "user_group": "default"}
        task = payloads.created_task(f"task-unified-1757156493-{counter['n']:08d}", usage=usage)
        return httpx.Response(200, json=task)

    yield evolink.post(CREATE).mock(side_effect=answer)


def callback_path(route: respx.Route, call: int = -1) -> tuple[str, str]:
    """The callback URL path and task id of the `call`-th create EvoLink received."""
    request = route.calls[call].request
    task_id = route.calls[call].response.json()["id"]
    return httpx.URL(json.loads(request.content)["callback_url"]).path, task_id


async def callback(app: FastAPI, path: str, body: dict[str, Any]) -> None:
    """EvoLink calls back (the apps here apply callbacks without confirming them)."""
    async with client_for(app, None) as evolink:
        answer = await evolink.post(path, json=body)
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text
