"""Create-request validation and authentication, answered in EvoLink's error shapes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.simulator import SimulatorConfig
from tests.simulator.conftest import FAST, StartSim, body, create

LONG_CALLBACK = "http://receiver.test/" + "a" * 2028  # 2049 characters


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": None}, "model"),
        ({"model": "gpt-image-1"}, "model"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"size": "512x512"}, "size"),
        ({"n": 3}, "n"),
        ({"n": "2"}, "n"),
        ({"n": True}, "n"),
        ({"image_urls": "http://img.test/a.png"}, "image_urls"),
        ({"image_urls": [f"http://img.test/{i}.png" for i in range(6)]}, "image_urls"),
        ({"image_urls": ["file:///etc/passwd"]}, "image_urls"),
        ({"mask_url": "http://img.test/m.png"}, "mask_url"),
        (
            {
                "image_urls": ["http://img.test/a.png", "http://img.test/b.png"],
                "mask_url": "http://img.test/m.png",
            },
            "mask_url",
        ),
        ({"image_urls": ["http://img.test/a.png"], "mask_url": "m.png"}, "mask_url"),
        ({"callback_url": "ftp://receiver.test/cb"}, "callback_url"),
        ({"callback_url": "not a url"}, "callback_url"),
        ({"callback_url": LONG_CALLBACK}, "callback_url"),
    ],
)
async def test_invalid_fields_answer_400_naming_the_field(
    sim: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    response = await create(sim, **fields)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"code", "message", "type", "param"}
    assert (error["code"], error["type"], error["param"]) == (
        "invalid_request",
        "invalid_request_error",
        param,
    )
    assert error["message"]
    assert (await sim.get("/_sim/tasks")).json()["tasks"] == []


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": "x" * 2000},
        {"prompt": "x" * 2000 + " [sim duration=0.1]"},
        {"size": "2:3", "n": 4},
        {"size": "1536x1024", "n": 2},
        {"image_urls": [f"https://img.test/{i}.webp" for i in range(5)]},
        {"image_urls": ["https://img.test/a.png"], "mask_url": "https://img.test/m.png"},
        {"callback_url": "http://localhost:8000/callbacks/t"},
        {"callback_url": "http://127.0.0.1:9/cb", "unknown_field": "ignored"},
        {"callback_url": "http://receiver.test/" + "a" * 2027},
    ],
)
async def test_valid_requests_are_accepted(sim: httpx.AsyncClient, fields: dict[str, Any]) -> None:
    assert (await create(sim, **fields)).status_code == 200


async def test_body_that_is_not_a_json_object(sim: httpx.AsyncClient) -> None:
    for content in (b"{not json", b"[1, 2]", b""):
        response = await sim.post("/v1/images/generations", content=content)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://hooks.example.com/cb/t", True),
        ("http://hooks.example.com/cb/t", False),
        ("https://127.0.0.1/cb", False),
        ("https://localhost/cb", False),
        ("https://10.1.2.3/cb", False),
        ("https://172.20.0.1/cb", False),
        ("https://192.168.1.10/cb", False),
        ("https://[::1]/cb", False),
    ],
)
async def test_strict_callbacks_apply_evolinks_rule(
    start_sim: StartSim, url: str, accepted: bool
) -> None:
    client = await start_sim(SimulatorConfig(strict_callbacks=True))
    response = await create(client, callback_url=url)
    assert response.status_code == (200 if accepted else 400)
    if not accepted:
        assert response.json()["error"]["param"] == "callback_url"


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer   ", "Basic c2stZXZvOng=", "sk-evo-test"]
)
async def test_missing_or_malformed_key_is_401(
    sim: httpx.AsyncClient, authorization: str | None
) -> None:
    sim.headers.pop("Authorization")
    headers = {} if authorization is None else {"Authorization": authorization}
    for response in (
        await sim.post("/v1/images/generations", json=body(), headers=headers),
        await sim.get("/v1/tasks/task-unified-1-abcdefgh", headers=headers),
        await sim.get("/v1/credits", headers=headers),
    ):
        assert response.status_code == 401
        assert response.json() == {
            "error": {
                "code": "unauthorized",
                "message": response.json()["error"]["message"],
                "type": "authentication_error",
            }
        }


async def test_configured_key_must_match(start_sim: StartSim) -> None:
    client = await start_sim(SimulatorConfig(api_key="sk-evo-right"))
    wrong = await create(client, headers={"Authorization": "Bearer sk-evo-wrong"})
    right = await create(client, headers={"Authorization": "bearer sk-evo-right"})
    assert (wrong.status_code, right.status_code) == (401, 200)


async def test_any_key_is_accepted_by_default(start_sim: StartSim) -> None:
    client = await start_sim(FAST)
    response = await create(client, headers={"Authorization": "Bearer anything"})
    assert response.status_code == 200
