"""Probes answer without authentication."""

from __future__ import annotations

import httpx


async def test_health_and_readiness(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await anonymous.get("/readyz")).json() == {"status": "ok"}


async def test_unknown_route_is_problem_json(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


async def test_request_id_is_echoed(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert len((await anonymous.get("/healthz")).headers["x-request-id"]) == 32
