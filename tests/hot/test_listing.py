"""The hot listing pages exactly as the list route does, and leaves odd queries to it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.hot.test_lookup import Sessions, archived, hot, new_job, observe
from tests.support import evolink_payloads as payloads


@pytest.fixture
def postgres_only(app: FastAPI) -> None:
    if app.state.hot_database is None:
        pytest.skip("the hot paths run on PostgreSQL only")


async def both(client: httpx.AsyncClient, params: dict[str, Any]) -> dict[str, Any]:
    """The page through the hot path, checked against the route's (`via`: a name the hot path
    does not read, which the route ignores)."""
    answered = hot("answered", "list")
    hot_page = await client.get("/v1/jobs", params=params)
    assert hot("answered", "list") == answered + 1
    route_page = await client.get("/v1/jobs", params={**params, "via": "fastapi"})
    assert hot_page.status_code == route_page.status_code == 200
    assert hot_page.json() == route_page.json()
    page: dict[str, Any] = hot_page.json()
    return page


@pytest.mark.usefixtures("postgres_only")
async def test_pages_filters_and_cursors_are_the_routes_own(
    client: httpx.AsyncClient, beta_client: httpx.AsyncClient, session_factory: Sessions
) -> None:
    ids = [await new_job(session_factory, metadata={"i": i}) for i in range(7)]
    await new_job(session_factory, caller="beta")
    await observe(
        session_factory, ids[2], payloads.completed_task("task-unified-l2", ["https://r/2"])
    )
    await archived(session_factory, ids[2], count=2)
    await observe(session_factory, ids[4], payloads.failed_task("task-unified-l4"))

    everything = await both(client, {})
    assert [j["id"] for j in everything["data"]] == [str(i) for i in reversed(ids)]
    assert everything["next_cursor"] is None
    shown = {j["id"]: j for j in everything["data"]}
    assert len(shown[str(ids[2])]["images"]) == 2

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = await both(client, params)
        seen += [j["id"] for j in page["data"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": 3, "cursor": page["next_cursor"]}
    assert seen == [str(i) for i in reversed(ids)]

    failed = await both(client, {"status": "failed"})
    assert [j["id"] for j in failed["data"]] == [str(ids[4])]
    assert len((await both(beta_client, {}))["data"]) == 1


@pytest.mark.usefixtures("postgres_only")
async def test_odd_queries_get_the_routes_own_answer(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    answered = hot("answered", "list")
    for params, status in (
        ({"limit": "0"}, 422),
        ({"limit": "201"}, 422),
        ({"limit": "ten"}, 422),
        ({"status": "done"}, 422),
        ({"cursor": "not-ours"}, 400),
        ({"cursor": "x" * 513}, 422),
    ):
        response = await client.get("/v1/jobs", params=params)
        assert response.status_code == status, params
        assert response.headers["content-type"] == "application/problem+json"
    assert (await anonymous.get("/v1/jobs")).status_code == 401
    repeated = await client.get("/v1/jobs?limit=2&limit=3")
    assert repeated.status_code == 200
    assert hot("answered", "list") == answered
