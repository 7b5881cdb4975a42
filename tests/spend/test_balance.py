"""EvoLink's `GET /v1/credits` through the client, what "remaining" means, and the simulator's
answer, which the client reads like EvoLink's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from app.evolink import errors
from app.evolink.client import EvolinkClient, build_http_client
from app.evolink.schemas import Credits
from app.simulator import SimulatorConfig
from app.simulator.app import create_simulator_app

API_KEY = "sk-evo-unit-secret"


async def credits_from(handler: Any) -> tuple[Any, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response: httpx.Response = handler(request)
        return response

    http = build_http_client("https://evolink.test", 5.0, httpx.MockTransport(answer))
    async with http:
        try:
            return await EvolinkClient(http, SecretStr(API_KEY)).get_credits(), seen
        except errors.EvolinkError as exc:
            return exc, seen


async def test_the_client_reads_the_documented_balance_with_our_key() -> None:
    body = {
        "success": True,
        "message": "",
        "data": {
            "token": {"remaining_credits": 99416.44, "used_credits": 583.56},
            "user": {"remaining_credits": 1095.40, "used_credits": 135.90},
        },
    }
    found, seen = await credits_from(lambda _: httpx.Response(200, json=body))
    assert isinstance(found, Credits)
    assert found.remaining == 1095.40
    assert seen[0].method == "GET" and seen[0].url.path == "/v1/credits"
    assert seen[0].headers["Authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, errors.EvolinkAuthFailed),
        (503, errors.EvolinkUnavailable),
        (500, errors.EvolinkOutcomeUnknown),
    ],
)
async def test_a_refused_balance_is_an_evolink_error(
    status: int, error: type[errors.EvolinkError]
) -> None:
    found, _ = await credits_from(lambda _: httpx.Response(status))
    assert isinstance(found, error)


async def test_a_body_that_is_not_a_balance_is_an_error() -> None:
    found, _ = await credits_from(lambda _: httpx.Response(200, text="<html>"))
    assert isinstance(found, errors.EvolinkOutcomeUnknown)


@pytest.mark.parametrize(
    ("data", "remaining"),
    [
        ({"token": {"remaining_credits": 5}, "user": {"remaining_credits": 9}}, 5),
        (
            {
                "token": {"remaining_credits": 0, "unlimited_credits": True},
                "user": {"remaining_credits": 9},
            },
            9,
        ),
        ({"user": {"remaining_credits": 7}}, 7),
        ({"token": {"remaining_credits": 3}}, 3),
        ({}, None),
    ],
)
def test_remaining_is_the_lower_of_the_key_s_allowance_and_the_account(
    data: dict[str, Any], remaining: float | None
) -> None:
    assert Credits.model_validate({"data": data}).remaining == remaining


async def test_the_simulator_answers_the_credits_call_like_evolink() -> None:
    simulator = create_simulator_app(SimulatorConfig(api_key=API_KEY))
    http = build_http_client("http://sim.test", 5.0, httpx.ASGITransport(app=simulator))
    async with LifespanManager(simulator), http:
        found = await EvolinkClient(http, SecretStr(API_KEY)).get_credits()
        wrong = EvolinkClient(http, SecretStr("sk-evo-wrong"))
        with pytest.raises(errors.EvolinkAuthFailed):
            await wrong.get_credits()
    assert found.remaining == SimulatorConfig().initial_credits
