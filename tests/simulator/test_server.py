"""The simulator under a real uvicorn, with a real callback receiver, over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from app.simulator import SimulatorConfig, run, server
from tests.simulator.conftest import FAST, Receiver, body


@asynccontextmanager
async def serving(uvicorn_server: uvicorn.Server) -> AsyncIterator[str]:
    """Serve on an ephemeral localhost port; yields the base URL, stops on exit."""
    sock = server.bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    task = asyncio.create_task(uvicorn_server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(5):
            # uvicorn offers a flag, not an event, to say it is listening.
            while not uvicorn_server.started:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        uvicorn_server.should_exit = True
        # A hang would hold this for hang_seconds were uvicorn not told to give up.
        await asyncio.wait_for(task, 10)
        sock.close()


def plain_server(app: ASGIApp) -> uvicorn.Server:
    """A quiet uvicorn server for a test app."""
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))


async def test_end_to_end_over_tcp() -> None:
    receiver = Receiver()
    config = replace(FAST, task_seconds=0.1)
    async with (
        serving(plain_server(receiver.app)) as receiver_url,
        serving(server.build_server(config, "127.0.0.1", 0)) as sim_url,
        httpx.AsyncClient(base_url=sim_url, headers={"Authorization": "Bearer k"}) as client,
    ):
        response = await client.post(
            "/v1/images/generations",
            json=body(callback_url=f"{receiver_url}/callbacks/t1", size="3:2"),
        )
        assert response.status_code == 200
        (call,) = await receiver.wait_for(1)
        assert (call.path, call.body["id"]) == ("/callbacks/t1", response.json()["id"])
        (url,) = call.body["results"]
        assert url.startswith(f"{sim_url}/files/")
        image = await client.get(url)
        assert image.headers["content-type"] == "image/png"


async def test_hang_makes_the_client_time_out_and_does_not_block_shutdown() -> None:
    config = replace(FAST, hang_seconds=120.0, shutdown_grace_seconds=1)
    async with (
        serving(server.build_server(config, "127.0.0.1", 0)) as sim_url,
        httpx.AsyncClient(base_url=sim_url, timeout=0.3) as client,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                "/v1/images/generations",
                json=body(),
                headers={"Authorization": "Bearer k", "X-Sim-Create": "hang"},
            )
    # Leaving `serving` waited for shutdown: reaching here means the hang was cancelled.


def test_run_announces_a_simulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built: list[tuple[SimulatorConfig, str, int]] = []

    class FakeServer:
        def run(self) -> None:
            built.append((config, host, port))

    def fake_build(config: SimulatorConfig, host: str, port: int) -> FakeServer:
        built.append((config, host, port))
        return FakeServer()

    config, host, port = SimulatorConfig(task_seconds=2), "127.0.0.1", 8123
    monkeypatch.setattr(server, "build_server", fake_build)
    run(config, host, port)
    assert built == [(config, host, port)] * 2
    err = capsys.readouterr().err
    assert "SIMULATOR (not EvoLink)" in err
    assert "http://127.0.0.1:8123" in err
