"""Input the database or the renderer cannot take is a 422 naming the field, never a 500.

Each body is sent as raw JSON text, as a hostile client would: `NaN`, `Infinity`, `1e400` and
lone surrogates are all things Python's JSON parser accepts.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from tests.support import evolink_payloads as payloads


def nested(depth: int) -> str:
    """A JSON object `depth` levels deep: {"a":{"a":...{}}}."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


BAD_BODIES = {
    "prompt_lone_surrogate": ('{"prompt": "a fox \\ud800"}', "prompt"),
    "prompt_nul": ('{"prompt": "a fox \\u0000 in snow"}', "prompt"),
    "mask_url_nul": (
        '{"prompt": "a fox", "image_urls": ["https://example.com/a.png"],'
        ' "mask_url": "https://example.com/m\\u0000.png"}',
        "mask_url",
    ),
    "image_url_nul": (
        '{"prompt": "a fox", "image_urls": ["https://e.com/\\u0000"]}',
        "image_urls.0",
    ),
    "image_url_surrogate": (
        '{"prompt": "a", "image_urls": ["https://e.com/\\udfff"]}',
        "image_urls.0",
    ),
    "metadata_nan": ('{"prompt": "a fox", "metadata": {"score": NaN}}', "metadata"),
    "metadata_infinity": ('{"prompt": "a fox", "metadata": {"score": -Infinity}}', "metadata"),
    "metadata_1e400": ('{"prompt": "a fox", "metadata": {"score": [1e400]}}', "metadata"),
    "metadata_nul_value": ('{"prompt": "a fox", "metadata": {"k": "\\u0000"}}', "metadata"),
    "metadata_nul_key": ('{"prompt": "a fox", "metadata": {"\\u0000": 1}}', "metadata"),
    "metadata_surrogate_key": ('{"prompt": "a fox", "metadata": {"\\ud800": 1}}', "metadata"),
    "metadata_256_deep": (f'{{"prompt": "a fox", "metadata": {nested(256)}}}', "metadata"),
    "metadata_33_deep": (f'{{"prompt": "a fox", "metadata": {nested(33)}}}', "metadata"),
}


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotency_key"])
@pytest.mark.parametrize(("raw", "field"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_unstorable_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, evolink: respx.MockRouter, raw: str, field: str, idempotent: bool
) -> None:
    create = evolink.post("/v1/images/generations").mock(
        return_value=httpx.Response(200, json=payloads.created_task())
    )
    headers = {"Content-Type": "application/json"}
    if idempotent:  # the fingerprint serialises the body: it must never see what cannot be
        headers["Idempotency-Key"] = f"bad-{field}"
    response = await client.post("/v1/jobs", content=raw.encode(), headers=headers)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert field in [e["field"] for e in problem["errors"]]
    assert not create.called
    assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_a_body_nested_beyond_the_parser_is_a_4xx(client: httpx.AsyncClient) -> None:
    raw = f'{{"prompt": "a fox", "metadata": {nested(5000)}}}'
    response = await client.post(
        "/v1/jobs", content=raw.encode(), headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text


async def test_metadata_within_the_limits_is_kept_as_given(
    client: httpx.AsyncClient, evolink: respx.MockRouter
) -> None:
    evolink.post("/v1/images/generations").mock(
        return_value=httpx.Response(200, json=payloads.created_task())
    )
    metadata = {"deep": json.loads(nested(31)), "big": 1e300, "text": "snow ☃ \U0001f98a"}
    response = await client.post(
        "/v1/jobs",
        json={"prompt": "a fox \U0001f98a", "metadata": metadata},
        headers={"Idempotency-Key": "deep-but-fine"},
    )
    assert response.status_code == 202, response.text
    job = (await client.get(f"/v1/jobs/{response.json()['id']}")).json()
    assert job["metadata"] == metadata and job["prompt"] == "a fox \U0001f98a"
